// Validates the prometheus-operator objects (ServiceMonitor, PrometheusRule)
// of rendered manifests against the operator's CRD schemas, with the
// @kubernetes-models/prometheus-operator models (their validate() checks the
// CRD's OpenAPI schema: types, required fields, unknown fields).
//   node scripts/validate-crds.mjs FILE...   (NODE_PATH: the npm install dir)
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

// ESM packages: imported by path from the install dir (NODE_PATH is not
// consulted by import).
const dir = process.env.NODE_PATH || "node_modules";
const load = (rel) => import(pathToFileURL(join(dir, rel)).href);
const YAML = (await load("yaml/dist/index.js")).default;
const models = await load("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/index.js");

let checked = 0;
let failed = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of YAML.parseAllDocuments(readFileSync(file, "utf8"))) {
    const obj = doc.toJS();
    if (!obj || obj.apiVersion !== "monitoring.coreos.com/v1") continue;
    const Model = models[obj.kind];
    if (!Model) {
      console.error(`${file}: no model for ${obj.kind}`);
      failed++;
      continue;
    }
    try {
      new Model(obj).validate();
      checked++;
      console.log(`${file}: ${obj.kind}/${obj.metadata.name} valid`);
    } catch (e) {
      failed++;
      console.error(`${file}: ${obj.kind}/${obj.metadata.name}: ${e.message}`);
    }
  }
}
if (checked === 0 || failed > 0) {
  console.error(`validate-crds: ${checked} valid, ${failed} failed`);
  process.exit(1);
}
