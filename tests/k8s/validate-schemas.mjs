// Validate Kubernetes objects (JSON array on stdin, or files given as
// arguments) against the API schemas shipped in the kubernetes-models npm
// package (generated from the upstream OpenAPI spec; validated offline with
// ajv). Unknown kinds are an error, so nothing passes unchecked.
// Usage: NODE_PATH=<dir>/node_modules node validate-schemas.mjs < objects.json
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const modelsDir = process.env.K8S_MODELS_DIR;
if (!modelsDir) {
  console.error("K8S_MODELS_DIR must name the node_modules/kubernetes-models directory");
  process.exit(2);
}

const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const obj of objects) {
  const name = `${obj.kind}/${obj.metadata?.name ?? "?"}`;
  const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : [null, obj.apiVersion];
  const modPath = path.join(modelsDir, group ?? "", version, `${obj.kind}.js`);
  let Model;
  try {
    Model = (await import(modPath))[obj.kind];
  } catch (e) {
    console.error(`FAIL ${name}: no schema for ${obj.apiVersion} ${obj.kind} (${e.code ?? e.message})`);
    failed++;
    continue;
  }
  try {
    new Model(obj).validate();
    console.log(`ok   ${obj.apiVersion} ${name}`);
  } catch (e) {
    console.error(`FAIL ${obj.apiVersion} ${name}: ${e.message}`);
    for (const err of e.errors ?? []) console.error(`     ${err.instancePath || "/"} ${err.message} ${JSON.stringify(err.params)}`);
    failed++;
  }
}
console.log(`${objects.length - failed} objects valid, ${failed} invalid`);
process.exit(failed ? 1 : 0);
