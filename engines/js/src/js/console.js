// console.js: `console.*` with Node-like formatting, written to stderr with a level prefix.
//
// Every argument is printed (the original printed only the first). Strings at the top level
// print as they are, everything else as Node's util.inspect would show it, printf-style
// `%s %d %i %f %j %o %O %c %%` directives included. Each call writes one record:
// `[level] text`, where level is log, info, warn, error, debug or trace.

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function quote(string) {
  const escaped = string
    .replace(/\\/g, "\\\\")
    .replace(/\n/g, "\\n")
    .replace(/\r/g, "\\r")
    .replace(/\t/g, "\\t")
    .replace(/[\x00-\x1f\x7f]/g, (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"));
  if (!escaped.includes("'")) return "'" + escaped + "'";
  if (!escaped.includes('"')) return '"' + escaped + '"';
  if (!escaped.includes("`")) return "`" + escaped + "`";
  return "'" + escaped.replace(/'/g, "\\'") + "'";
}

function formatKey(key) {
  if (typeof key === "symbol") return "[" + key.toString() + "]";
  return IDENTIFIER.test(key) ? key : quote(key);
}

function constructorName(value) {
  let proto = Object.getPrototypeOf(value);
  if (proto === null) return null;
  const ctor = proto.constructor;
  return typeof ctor === "function" && typeof ctor.name === "string" ? ctor.name : "Object";
}

function functionLabel(fn) {
  const source = Function.prototype.toString.call(fn);
  const name = fn.name ? ": " + fn.name : " (anonymous)";
  if (source.startsWith("class")) return "[class " + (fn.name || "(anonymous)") + "]";
  const kind = Object.prototype.toString.call(fn).slice(8, -1);
  if (kind === "AsyncFunction") return "[AsyncFunction" + name + "]";
  if (kind === "GeneratorFunction") return "[GeneratorFunction" + name + "]";
  if (kind === "AsyncGeneratorFunction") return "[AsyncGeneratorFunction" + name + "]";
  return "[Function" + name + "]";
}

// The stack without the engine's own frames (the polyfills and native calls they make).
function cleanStack(stack) {
  return stack
    .split("\n")
    .filter((line) => !line.includes("(wws:polyfills:") && !/^\s*at (?:\S+ )?\(native\)$/.test(line))
    .join("\n")
    .replace(/\s+$/, "");
}

// `Name: message` plus the stack frames, as Node prints an Error.
function describeError(error) {
  if (!(error instanceof Error)) {
    if (error !== null && typeof error === "object" && typeof error.message === "string") {
      return (error.name || "Error") + ": " + error.message;
    }
    return inspect(error, {});
  }
  let head;
  try {
    head = String(error);
  } catch {
    head = "Error";
  }
  const stack = typeof error.stack === "string" ? cleanStack(error.stack) : "";
  let text = stack && !stack.startsWith(head) ? head + "\n" + stack : stack || head;
  if (error.cause !== undefined) text += "\n  [cause]: " + inspect(error.cause, { depth: 1 });
  return text;
}

function joinEntries(open, entries, close, indent) {
  if (entries.length === 0) return open.trimEnd() + close.trimStart();
  const oneLine = open + entries.join(", ") + close;
  if (oneLine.length <= 72 && !oneLine.includes("\n")) return oneLine;
  const pad = "  ".repeat(indent + 1);
  return open.trimEnd() + "\n" + entries.map((e) => pad + e).join(",\n") + "\n" + "  ".repeat(indent) + close.trimStart();
}

function inspect(value, options = {}, seen = [], indent = 0) {
  const depth = options.depth === undefined ? 2 : options.depth;
  switch (typeof value) {
    case "string":
      return indent === 0 && options.top ? value : quote(value);
    case "number":
      return Object.is(value, -0) ? "-0" : String(value);
    case "bigint":
      return value + "n";
    case "boolean":
    case "undefined":
      return String(value);
    case "symbol":
      return value.toString();
    case "function": {
      const label = functionLabel(value);
      const keys = Object.keys(value);
      if (keys.length === 0 || seen.length > depth) return label;
      return inspectObject(value, label + " ", options, seen, indent, depth);
    }
  }
  if (value === null) return "null";
  if (seen.includes(value)) return "[Circular]";
  if (typeof value[inspectSymbol] === "function" && value[inspectSymbol] !== inspect) {
    try {
      const custom = value[inspectSymbol](depth - seen.length, options, inspect);
      if (typeof custom === "string") return custom;
      if (custom !== value) return inspect(custom, options, seen, indent);
    } catch {
      // fall through to the generic form
    }
  }
  if (value instanceof Error) return describeError(value);
  if (value instanceof Date) return isNaN(value.getTime()) ? "Invalid Date" : value.toISOString();
  if (value instanceof RegExp) return String(value);
  if (value instanceof Promise) return "Promise {}";
  if (value instanceof WeakMap) return "WeakMap { <items unknown> }";
  if (value instanceof WeakSet) return "WeakSet { <items unknown> }";
  if (value instanceof String || value instanceof Number || value instanceof Boolean) {
    return "[" + constructorName(value) + ": " + inspect(value.valueOf(), {}) + "]";
  }
  const nested = seen.length > depth;
  if (Array.isArray(value)) {
    if (nested) return value.length ? "[Array]" : "[]";
    const next = seen.concat([value]);
    const entries = [];
    let holes = 0;
    const shown = Math.min(value.length, 100);
    for (let i = 0; i < shown; i++) {
      if (!(i in value)) {
        holes++;
        continue;
      }
      if (holes) entries.push("<" + holes + " empty item" + (holes > 1 ? "s" : "") + ">");
      holes = 0;
      entries.push(inspect(value[i], options, next, indent + 1));
    }
    if (holes) entries.push("<" + holes + " empty item" + (holes > 1 ? "s" : "") + ">");
    if (value.length > shown) entries.push("... " + (value.length - shown) + " more items");
    const name = constructorName(value);
    const prefix = name && name !== "Array" ? name + "(" + value.length + ") " : "";
    return joinEntries(prefix + "[ ", entries, " ]", indent);
  }
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    const name = constructorName(value);
    if (nested) return "[" + name + "]";
    const items = Array.prototype.slice.call(value, 0, 100).map((v) => inspect(v, {}));
    if (value.length > 100) items.push("... " + (value.length - 100) + " more items");
    return joinEntries(name + "(" + value.length + ") [ ", items, " ]", indent);
  }
  if (value instanceof ArrayBuffer) {
    const bytes = Array.from(new Uint8Array(value, 0, Math.min(value.byteLength, 50)), (b) => b.toString(16).padStart(2, "0"));
    const more = value.byteLength > 50 ? " ... " + (value.byteLength - 50) + " more bytes" : "";
    return "ArrayBuffer { [Uint8Contents]: <" + bytes.join(" ") + more + ">, byteLength: " + value.byteLength + " }";
  }
  if (value instanceof Map) {
    if (nested) return "[Map]";
    const next = seen.concat([value]);
    const entries = [];
    for (const [k, v] of value) entries.push(inspect(k, options, next, indent + 1) + " => " + inspect(v, options, next, indent + 1));
    return joinEntries("Map(" + value.size + ") { ", entries, " }", indent);
  }
  if (value instanceof Set) {
    if (nested) return "[Set]";
    const next = seen.concat([value]);
    const entries = [];
    for (const v of value) entries.push(inspect(v, options, next, indent + 1));
    return joinEntries("Set(" + value.size + ") { ", entries, " }", indent);
  }
  const name = constructorName(value);
  let prefix = "";
  if (name === null) prefix = "[Object: null prototype] ";
  else if (name !== "Object") prefix = name + " ";
  else if (value[Symbol.toStringTag]) prefix = "Object [" + value[Symbol.toStringTag] + "] ";
  if (nested) return "[" + (name || "Object") + "]";
  return inspectObject(value, prefix, options, seen, indent, depth);
}

function inspectObject(value, prefix, options, seen, indent) {
  const next = seen.concat([value]);
  const entries = [];
  for (const key of Reflect.ownKeys(value)) {
    const desc = Object.getOwnPropertyDescriptor(value, key);
    if (!desc || !desc.enumerable) continue;
    let shown;
    if ("value" in desc) shown = inspect(desc.value, options, next, indent + 1);
    else shown = desc.get && desc.set ? "[Getter/Setter]" : desc.get ? "[Getter]" : "[Setter]";
    entries.push(formatKey(key) + ": " + shown);
  }
  return joinEntries(prefix + "{ ", entries, " }", indent);
}

function formatArgs(args) {
  let out = "";
  let rest = 0;
  if (typeof args[0] === "string" && args[0].includes("%")) {
    const format = args[0];
    rest = 1;
    let i = 0;
    while (i < format.length) {
      const c = format[i];
      if (c !== "%" || i + 1 >= format.length) {
        out += c;
        i++;
        continue;
      }
      const d = format[i + 1];
      i += 2;
      if (d === "%") {
        out += "%";
        continue;
      }
      if (!"sdifjoOc".includes(d)) {
        out += "%" + d;
        continue;
      }
      if (rest >= args.length) {
        out += "%" + d;
        continue;
      }
      const arg = args[rest++];
      switch (d) {
        case "s":
          out += typeof arg === "string" ? arg : typeof arg === "bigint" ? arg + "n" : typeof arg === "object" && arg !== null ? inspect(arg, { depth: 1 }) : String(arg);
          break;
        case "d":
        case "i": {
          if (typeof arg === "bigint") out += arg + "n";
          else if (typeof arg === "symbol") out += "NaN";
          else {
            const n = Number(arg);
            out += d === "i" ? String(Math.trunc(n)) : Object.is(n, -0) ? "-0" : String(n);
          }
          break;
        }
        case "f":
          out += typeof arg === "symbol" ? "NaN" : String(parseFloat(arg));
          break;
        case "j":
          try {
            out += JSON.stringify(arg);
          } catch {
            out += "[Circular]";
          }
          break;
        case "o":
          out += inspect(arg, { depth: 4 });
          break;
        case "O":
          out += inspect(arg, {});
          break;
        case "c":
          break;
      }
    }
  }
  for (let i = rest; i < args.length; i++) {
    if (out.length || i > 0) out += " ";
    out += inspect(args[i], { top: true });
  }
  return out;
}

let groupIndent = "";
const counters = new Map();
const timers = new Map();

// Set while the engine runs the optional warm-up request (see serve.js), whose logs would
// only confuse.
let consoleMuted = false;

function write(level, text) {
  if (consoleMuted) return;
  if (groupIndent) text = groupIndent + text.replace(/\n/g, "\n" + groupIndent);
  host.writeErr("[" + level + "] " + text);
}

const console = {
  log: (...args) => write("log", formatArgs(args)),
  info: (...args) => write("info", formatArgs(args)),
  warn: (...args) => write("warn", formatArgs(args)),
  error: (...args) => write("error", formatArgs(args)),
  debug: (...args) => write("debug", formatArgs(args)),
  trace: (...args) => {
    const stack = cleanStack((new Error().stack || "").split("\n").slice(1).join("\n"));
    write("trace", "Trace" + (args.length ? ": " + formatArgs(args) : "") + (stack ? "\n" + stack : ""));
  },
  dir: (value, options) => write("log", inspect(value, options || {})),
  dirxml: (...args) => write("log", formatArgs(args)),
  table: (...args) => write("log", formatArgs(args)),
  assert: (condition, ...args) => {
    if (!condition) write("error", "Assertion failed" + (args.length ? ": " + formatArgs(args) : ""));
  },
  count: (label = "default") => {
    const n = (counters.get(label) || 0) + 1;
    counters.set(label, n);
    write("info", label + ": " + n);
  },
  countReset: (label = "default") => counters.delete(label),
  time: (label = "default") => timers.set(label, host.now()),
  timeEnd: (label = "default") => {
    if (timers.has(label)) write("info", label + ": " + (host.now() - timers.get(label)).toFixed(3) + "ms");
    timers.delete(label);
  },
  timeLog: (label = "default", ...args) => {
    if (!timers.has(label)) return;
    const extra = args.length ? " " + formatArgs(args) : "";
    write("info", label + ": " + (host.now() - timers.get(label)).toFixed(3) + "ms" + extra);
  },
  group: (...args) => {
    if (args.length) write("log", formatArgs(args));
    groupIndent += "  ";
  },
  groupCollapsed: (...args) => console.group(...args),
  groupEnd: () => {
    groupIndent = groupIndent.slice(2);
  },
};

defineGlobal("console", console);
