// Parses an AsyncAPI document with the AsyncAPI initiative's own parser (npm
// @asyncapi/parser, installed by `make test`) and prints its diagnostics as JSON.
// Usage: node validate_asyncapi.cjs <parser module dir> <document>
const fs = require("node:fs");
const { Parser } = require(process.argv[2]);

new Parser()
  .parse(fs.readFileSync(process.argv[3], "utf8"))
  .then(({ document, diagnostics }) => {
    const found = diagnostics.map((d) => ({
      severity: d.severity, // 0 error, 1 warning, 2 information, 3 hint
      code: d.code,
      message: d.message,
      path: d.path,
    }));
    console.log(JSON.stringify({ parsed: Boolean(document), diagnostics: found }));
  });
