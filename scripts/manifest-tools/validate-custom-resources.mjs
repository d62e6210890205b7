// Validates cert-manager and Prometheus Operator objects against their CRD schemas, offline,
// with the validators @kubernetes-models compiles from those projects' CRD files
// (cert-manager v1.20 and prometheus-operator v0.90 for the pinned 5.0.1 packages).
//
//   node validate-custom-resources.mjs NODE_MODULES_DIR OBJECTS.json
//
// OBJECTS.json is a JSON array of objects. Prints one `valid` line per object; an object that
// does not validate, or whose kind has no schema here, is reported and the exit code is 1.
// What these schemas check: types, required fields, enums, patterns and formats. What they do
// not: unknown fields (CRD schemas do not forbid them; the API server prunes them) and CEL rules.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const packages = {
  "cert-manager.io": "@kubernetes-models/cert-manager",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

const [nodeModules, objectsFile] = process.argv.slice(2);
if (!nodeModules || !objectsFile) {
  console.error("usage: validate-custom-resources.mjs NODE_MODULES_DIR OBJECTS.json");
  process.exit(2);
}
const objects = JSON.parse(readFileSync(objectsFile, "utf8"));
let failed = 0;
for (const object of objects) {
  const [group, version] = String(object.apiVersion).split("/");
  const where = `${object.apiVersion} ${object.kind} ${object.metadata?.namespace ?? ""}/${object.metadata?.name}`;
  const pkg = packages[group];
  const module = pkg && join(nodeModules, pkg, group, version ?? "", `${object.kind}.js`);
  if (!module || !existsSync(module)) {
    console.log(`no schema: ${where}`);
    failed++;
    continue;
  }
  const exports = await import(pathToFileURL(module).href);
  const Model = exports[object.kind];
  try {
    new Model(object).validate();
    const { version: pkgVersion } = JSON.parse(
      readFileSync(join(nodeModules, pkg, "package.json"), "utf8"),
    );
    console.log(`valid: ${where} (${pkg}@${pkgVersion})`);
  } catch (error) {
    console.log(`invalid: ${where}: ${error.message}`);
    failed++;
  }
}
process.exit(failed === 0 ? 0 : 1);
