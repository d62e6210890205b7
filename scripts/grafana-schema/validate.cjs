// Validates Grafana dashboard JSON files against the JSON Schema generated from @grafana/schema
// (the classic dashboard model, strict: unknown keys are errors).
//
//   node validate.cjs TOOLS_DIR FILE...
//
// TOOLS_DIR holds node_modules (ajv, ajv-formats) and dashboard.schema.json. Prints one line
// per problem and exits 1 when any file is invalid.
"use strict";
const fs = require("fs");
const path = require("path");

const [tools, ...files] = process.argv.slice(2);
const load = (name) => require(path.join(tools, "node_modules", name));
const Ajv = load("ajv").default;
const addFormats = load("ajv-formats").default;

const schema = JSON.parse(fs.readFileSync(path.join(tools, "dashboard.schema.json"), "utf8"));
// Annotation queries carry their datasource's own fields (Prometheus: expr, step, titleFormat,
// textFormat, tagKeys, useValueForTime), like panel targets do; the generated type knows only
// the built-in Grafana annotation's. Everything else stays strict.
schema.definitions.AnnotationQuery.additionalProperties = true;

const ajv = new Ajv({ allErrors: true, strict: false });
addFormats(ajv);
const validate = ajv.compile(schema);

let failed = false;
for (const file of files) {
  const dashboard = JSON.parse(fs.readFileSync(file, "utf8"));
  if (validate(dashboard)) {
    console.log(`${file}: valid`);
  } else {
    failed = true;
    for (const e of validate.errors) {
      console.log(`${file}: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
    }
  }
}
process.exit(failed ? 1 : 0);
