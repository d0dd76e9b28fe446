{
  "targets": [
    {
      "target_name": "ferry_native",
      "type": "none",
      "actions": [
        {
          "action_name": "cargo_build",
          "inputs": ["native/Cargo.toml"],
          "outputs": ["native/ferry.node"],
          "action": ["node", "scripts/build.mjs", "--native-only"]
        }
      ]
    }
  ]
}
