// The benchmark's output: named figures. A name, once published, is never renamed.
export interface Figure {
  name: string;
  value: number;
  unit: string;
}

export class Figures {
  readonly list: Figure[] = [];

  add(name: string, value: number, unit: string): void {
    this.list.push({ name, value: Number.isFinite(value) ? Number(value.toPrecision(6)) : 0, unit });
  }

  print(json: boolean): void {
    if (json) {
      process.stdout.write(`${JSON.stringify(this.list, null, 2)}\n`);
      return;
    }
    const width = Math.max(...this.list.map((f) => f.name.length));
    for (const f of this.list) {
      console.log(`${f.name.padEnd(width)}  ${formatNumber(f.value).padStart(14)} ${f.unit}`);
    }
  }
}

function formatNumber(v: number): string {
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(v < 10 ? 3 : 1);
}
