// Joins the compiled modules of the SDK (dist/*.js, as tsc made them from src/*.ts) into one ES
// module with no imports, for the shop page, which loads one file and has no bundler. Used by
// copy-bundle.mjs (`npm run build`) and by test/package.test.mjs.
//
// Not a general bundler: it relies on how src/ is written and fails loudly otherwise.
//   - index.js holds only comments and re-exports: `export { A, B } from "./module.js";` (its
//     `export type` lines are gone from the JS). Those names are the bundle's exports; its
//     first comment (up to the first blank line) is the bundle's too.
//   - The other modules import only from "./module.js" with `import { a, b } from …` (no
//     renaming, no default or namespace imports) and export only with `export class`,
//     `export function`, `export const`… (a module of types only is `export {};`).
//   - No two modules declare the same top-level name.
// Each module goes in after the modules it imports (depth first, from index.js's re-exports
// in order), its import lines removed; `export` is kept on the public names only, so the
// bundle exports exactly what index.js does.
import { readFileSync } from "node:fs";
import { join } from "node:path";

const IMPORT = /^import \{([^}]*)\} from "\.\/([A-Za-z0-9_-]+)\.js";\n/gm;
const REEXPORT = /^export \{([^}]*)\} from "\.\/([A-Za-z0-9_-]+)\.js";$/;
const DECLARATION = /^(export )?(?:async )?(?:class|function\*?|const|let|var) ([A-Za-z_$][\w$]*)/gm;

const names = (list) => list.split(",").map((n) => n.trim()).filter(Boolean);

/** The bundle of the modules in `dist` (a directory of tsc's output), as a string. */
export function bundle(dist) {
  const read = (name) => readFileSync(join(dist, `${name}.js`), "utf8");

  // The entry: its leading comment, and its re-exports.
  const index = read("index");
  const lines = index.split("\n");
  const header = [];
  while (lines.length && lines[0].startsWith("//")) header.push(lines.shift());
  const publicNames = new Map(); // name -> module
  const entryModules = [];
  for (const line of lines) {
    if (line.trim() === "" || line.startsWith("//")) continue;
    const m = REEXPORT.exec(line);
    if (!m) throw new Error(`bundle: index.js: expected only re-exports, found: ${line}`);
    for (const name of names(m[1])) {
      if (/\sas\s/.test(name)) throw new Error(`bundle: index.js: renamed re-export ${name}`);
      publicNames.set(name, m[2]);
    }
    entryModules.push(m[2]);
  }

  // The modules, each after those it imports.
  const ordered = [];
  const state = new Map(); // module -> "visiting" | "done"
  const modules = new Map(); // module -> { body, declared }
  const visit = (name, from) => {
    if (state.get(name) === "done") return;
    if (state.get(name) === "visiting") throw new Error(`bundle: import cycle through ${name}.js (from ${from}.js)`);
    state.set(name, "visiting");
    const source = read(name);
    const imports = [];
    const body = source.replace(IMPORT, (_, list, target) => {
      for (const n of names(list)) {
        if (/\sas\s/.test(n)) throw new Error(`bundle: ${name}.js: renamed import ${n}`);
        imports.push({ name: n, target });
      }
      return "";
    });
    const leftover = body.match(/^(import|export \*|export default|export \{(?!\};$)).*$/m);
    if (leftover) throw new Error(`bundle: ${name}.js: cannot join: ${leftover[0]}`);
    for (const target of new Set(imports.map((i) => i.target))) visit(target, name);
    for (const i of imports) {
      const exported = modules.get(i.target).declared.get(i.name);
      if (exported !== true) throw new Error(`bundle: ${name}.js imports ${i.name}, which ${i.target}.js does not export`);
    }
    const declared = new Map([...body.matchAll(DECLARATION)].map((m) => [m[2], m[1] !== undefined]));
    modules.set(name, { body, declared });
    state.set(name, "done");
    ordered.push(name);
  };
  for (const name of entryModules) visit(name, "index");

  // One scope now: no name twice; every public name declared and exported by its module.
  const owner = new Map();
  for (const name of ordered) {
    for (const declared of modules.get(name).declared.keys()) {
      if (owner.has(declared)) throw new Error(`bundle: ${declared} is declared in ${owner.get(declared)}.js and ${name}.js`);
      owner.set(declared, name);
    }
  }
  for (const [name, module] of publicNames) {
    if (modules.get(module).declared.get(name) !== true) throw new Error(`bundle: index.js re-exports ${name}, which ${module}.js does not export`);
  }

  const parts = ordered.map((name) => {
    const body = modules.get(name).body
      .replace(/^export \{\};\n?/m, "")
      .replace(DECLARATION, (whole, exported, declared) => (exported && !publicNames.has(declared) ? whole.slice("export ".length) : whole))
      .replace(/^\s*\n/, "")
      .replace(/\s*$/, "\n");
    return `// ${"-".repeat(87)}\n// src/${name}.ts\n\n${body}`;
  });
  const banner = [
    ...header,
    "//",
    "// Made by `npm run build` in clients/js (scripts/bundle.mjs): the compiled modules of",
    "// src/ in one ES module. Do not edit: edit clients/js/src/ and build.",
  ];
  return `${banner.join("\n")}\n\n${parts.join("\n")}`;
}
