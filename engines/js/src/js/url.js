// url.js: URL and URLSearchParams after the WHATWG URL standard.
//
// The parser covers what servers meet: special and non-special schemes, relative references,
// credentials, IPv4 (with the hex/octal forms) and IPv6 hosts, default ports, dot segments,
// percent-encoding sets per component, IDNA for non-ASCII hosts (punycode, with lower-casing
// as the only mapping). Setters re-run the matching part of the parser.

const SPECIAL_PORTS = { "ftp:": "21", "file:": "", "http:": "80", "https:": "443", "ws:": "80", "wss:": "443" };

function isSpecial(protocol) {
  return Object.prototype.hasOwnProperty.call(SPECIAL_PORTS, protocol);
}

function invalidURL(input, base) {
  return new TypeError(`Invalid URL: ${JSON.stringify(String(input))}` + (base !== undefined ? ` against base ${JSON.stringify(String(base))}` : ""));
}

const C0 = (c) => c < 0x20 || c > 0x7e;
const FRAGMENT_SET = (c) => C0(c) || c === 0x20 || c === 0x22 || c === 0x3c || c === 0x3e || c === 0x60;
const QUERY_SET = (c) => C0(c) || c === 0x20 || c === 0x22 || c === 0x23 || c === 0x3c || c === 0x3e;
const SPECIAL_QUERY_SET = (c) => QUERY_SET(c) || c === 0x27;
const PATH_SET = (c) => QUERY_SET(c) || c === 0x3f || c === 0x60 || c === 0x7b || c === 0x7d;
const USERINFO_SET = (c) => PATH_SET(c) || c === 0x2f || c === 0x3a || c === 0x3b || c === 0x3d || c === 0x40 || (c >= 0x5b && c <= 0x5e) || c === 0x7c;

const HEX = "0123456789ABCDEF";

// For each set, a test that tells whether a string needs any encoding at all (most don't).
const NEEDS_ENCODING = new Map([
  [C0, /[^\x20-\x7e]/],
  [FRAGMENT_SET, /[^\x21-\x7e]|["<>`]/],
  [QUERY_SET, /[^\x21-\x7e]|["#<>]/],
  [SPECIAL_QUERY_SET, /[^\x21-\x7e]|["#<>']/],
  [PATH_SET, /[^\x21-\x7e]|["#<>?`{}]/],
  [USERINFO_SET, /[^\x21-\x7e]|["#<>?`{}/:;=@[\\\]^|]/],
]);

function percentEncode(string, inSet) {
  const needs = NEEDS_ENCODING.get(inSet);
  if (needs && !needs.test(string)) return string;
  let out = "";
  for (const ch of wellFormed(string)) {
    const cp = ch.codePointAt(0);
    if (cp < 0x80) {
      out += inSet(cp) ? "%" + HEX[cp >> 4] + HEX[cp & 15] : ch;
    } else {
      for (const b of utf8Encode(ch)) out += "%" + HEX[b >> 4] + HEX[b & 15];
    }
  }
  return out;
}

// Percent-decodes to bytes (invalid escapes stay as they are).
function percentDecodeBytes(string) {
  const bytes = utf8Encode(string);
  const out = new Uint8Array(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x25 && i + 2 < bytes.length) {
      const hi = hexValue(bytes[i + 1]);
      const lo = hexValue(bytes[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out[n++] = hi * 16 + lo;
        i += 2;
        continue;
      }
    }
    out[n++] = b;
  }
  return out.subarray(0, n);
}

function hexValue(b) {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  return -1;
}

function percentDecode(string) {
  if (!string.includes("%")) return string;
  return utf8Decode(percentDecodeBytes(string), false);
}

// ---- hosts -----------------------------------------------------------------------------

const FORBIDDEN_HOST = /[\x00\t\n\r #/:<>?@[\\\]^|]/;
const FORBIDDEN_DOMAIN = /[\x00-\x1f\t\n\r #%/:<>?@[\\\]^|\x7f]/;

function parseIPv4Number(part) {
  if (part === "") return NaN;
  let radix = 10;
  if (/^0[xX]/.test(part)) {
    part = part.slice(2);
    radix = 16;
    if (part === "") return 0;
    if (!/^[0-9a-fA-F]+$/.test(part)) return NaN;
  } else if (part.length > 1 && part[0] === "0") {
    part = part.slice(1);
    radix = 8;
    if (!/^[0-7]+$/.test(part)) return NaN;
  } else if (!/^[0-9]+$/.test(part)) return NaN;
  return parseInt(part, radix);
}

function endsInNumber(host) {
  const parts = host.split(".");
  if (parts[parts.length - 1] === "") {
    if (parts.length === 1) return false;
    parts.pop();
  }
  const last = parts[parts.length - 1];
  if (/^[0-9]+$/.test(last)) return true;
  return !isNaN(parseIPv4Number(last)) && /^0[xX]/.test(last);
}

function parseIPv4(host) {
  const parts = host.split(".");
  if (parts[parts.length - 1] === "" && parts.length > 1) parts.pop();
  if (parts.length > 4) return null;
  const numbers = parts.map(parseIPv4Number);
  if (numbers.some((n) => isNaN(n))) return null;
  for (let i = 0; i < numbers.length - 1; i++) if (numbers[i] > 255) return null;
  if (numbers[numbers.length - 1] >= 256 ** (5 - numbers.length)) return null;
  let ipv4 = numbers[numbers.length - 1];
  for (let i = 0; i < numbers.length - 1; i++) ipv4 += numbers[i] * 256 ** (3 - i);
  const out = [];
  for (let i = 0; i < 4; i++) {
    out.unshift(ipv4 % 256);
    ipv4 = Math.floor(ipv4 / 256);
  }
  return out.join(".");
}

function parseIPv6(input) {
  const pieces = [0, 0, 0, 0, 0, 0, 0, 0];
  let piece = 0;
  let compress = null;
  let i = 0;
  const c = (k) => input.charCodeAt(k);
  if (input[0] === ":") {
    if (input[1] !== ":") return null;
    i = 2;
    compress = ++piece;
  }
  while (i < input.length) {
    if (piece === 8) return null;
    if (input[i] === ":") {
      if (compress !== null) return null;
      i++;
      compress = ++piece;
      continue;
    }
    let value = 0;
    let length = 0;
    while (length < 4 && i < input.length && hexValue(c(i)) >= 0) {
      value = value * 16 + hexValue(c(i));
      i++;
      length++;
    }
    if (input[i] === ".") {
      if (length === 0 || piece > 6) return null;
      i -= length;
      const v4 = parseIPv4(input.slice(i));
      if (v4 === null || !/^\d+\.\d+\.\d+\.\d+$/.test(input.slice(i))) return null;
      const b = v4.split(".").map(Number);
      pieces[piece++] = b[0] * 256 + b[1];
      pieces[piece++] = b[2] * 256 + b[3];
      i = input.length;
      break;
    }
    if (input[i] === ":") {
      i++;
      if (i >= input.length) return null;
    } else if (i < input.length) return null;
    pieces[piece++] = value;
  }
  if (compress !== null) {
    let swaps = piece - compress;
    piece = 7;
    while (piece !== 0 && swaps > 0) {
      const tmp = pieces[compress + swaps - 1];
      pieces[compress + swaps - 1] = pieces[piece];
      pieces[piece] = tmp;
      piece--;
      swaps--;
    }
  } else if (piece !== 8) return null;
  // Serialise: compress the longest run of two or more zero pieces.
  let best = -1;
  let bestLength = 1;
  for (let k = 0; k < 8; ) {
    if (pieces[k] !== 0) {
      k++;
      continue;
    }
    let end = k;
    while (end < 8 && pieces[end] === 0) end++;
    if (end - k > bestLength) {
      best = k;
      bestLength = end - k;
    }
    k = end;
  }
  let out = "";
  for (let k = 0; k < 8; k++) {
    if (k === best) {
      out += k === 0 ? "::" : ":";
      k += bestLength - 1;
      continue;
    }
    out += pieces[k].toString(16) + (k < 7 ? ":" : "");
  }
  return "[" + out + "]";
}

// RFC 3492 punycode encoding of one label.
function punycode(label) {
  const cps = Array.from(label, (ch) => ch.codePointAt(0));
  let out = cps.filter((cp) => cp < 0x80).map((cp) => String.fromCharCode(cp)).join("");
  const basic = out.length;
  let handled = basic;
  if (basic) out += "-";
  let n = 128;
  let delta = 0;
  let bias = 72;
  const digit = (d) => String.fromCharCode(d < 26 ? d + 97 : d + 22);
  const adapt = (d, count, first) => {
    d = first ? Math.floor(d / 700) : d >> 1;
    d += Math.floor(d / count);
    let k = 0;
    while (d > 455) {
      d = Math.floor(d / 35);
      k += 36;
    }
    return k + Math.floor((36 * d) / (d + 38));
  };
  while (handled < cps.length) {
    const m = Math.min(...cps.filter((cp) => cp >= n));
    delta += (m - n) * (handled + 1);
    n = m;
    for (const cp of cps) {
      if (cp < n) delta++;
      if (cp === n) {
        let q = delta;
        for (let k = 36; ; k += 36) {
          const t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
          if (q < t) break;
          out += digit(t + ((q - t) % (36 - t)));
          q = Math.floor((q - t) / (36 - t));
        }
        out += digit(q);
        bias = adapt(delta, handled + 1, handled === basic);
        delta = 0;
        handled++;
      }
    }
    delta++;
    n++;
  }
  return out;
}

function domainToASCII(domain) {
  const lowered = domain.normalize("NFC").toLowerCase().replace(/[\u3002\uff0e\uff61]/g, ".");
  if (/^[\x00-\x7f]*$/.test(lowered)) return lowered;
  return lowered
    .split(".")
    .map((label) => (/^[\x00-\x7f]*$/.test(label) ? label : "xn--" + punycode(label)))
    .join(".");
}

// Returns the serialised host, or null when it is not valid.
function parseHost(input, special) {
  if (input.startsWith("[")) {
    if (!input.endsWith("]")) return null;
    return parseIPv6(input.slice(1, -1));
  }
  if (!special) {
    if (FORBIDDEN_HOST.test(input)) return null;
    return percentEncode(input, C0);
  }
  const domain = percentDecode(input);
  const ascii = domainToASCII(domain);
  if (ascii === "" || FORBIDDEN_DOMAIN.test(ascii)) return null;
  if (endsInNumber(ascii)) return parseIPv4(ascii);
  return ascii;
}

// ---- the parser ------------------------------------------------------------------------

// A parsed URL: every field already serialised, as the URL getters return them.
function emptyRecord() {
  return { protocol: "", username: "", password: "", hostname: "", port: "", hasHost: false, path: [], opaque: null, query: null, fragment: null };
}

function isWindowsDriveLetter(s) {
  return /^[A-Za-z][:|]$/.test(s);
}

function isSingleDot(s) {
  return s === "." || s.toLowerCase() === "%2e";
}

function isDoubleDot(s) {
  const l = s.toLowerCase();
  return l === ".." || l === ".%2e" || l === "%2e." || l === "%2e%2e";
}

// Appends the segments of `input` (a path without query or fragment) to `path`.
function parsePath(input, record, path) {
  const special = isSpecial(record.protocol);
  const segments = special ? input.split(/[/\\]/) : input.split("/");
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i];
    const last = i === segments.length - 1;
    if (isDoubleDot(segment)) {
      if (path.length && !(record.protocol === "file:" && path.length === 1 && /^[A-Za-z]:$/.test(path[0]))) path.pop();
      if (last) path.push("");
    } else if (isSingleDot(segment)) {
      if (last) path.push("");
    } else {
      let s = percentEncode(segment, PATH_SET);
      if (record.protocol === "file:" && path.length === 0 && isWindowsDriveLetter(s)) s = s[0] + ":";
      path.push(s);
    }
  }
}

function parseAuthority(authority, record, input, base) {
  const at = authority.lastIndexOf("@");
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    authority = authority.slice(at + 1);
    const colon = userinfo.indexOf(":");
    const user = colon >= 0 ? userinfo.slice(0, colon) : userinfo;
    const pass = colon >= 0 ? userinfo.slice(colon + 1) : "";
    record.username = percentEncode(user, USERINFO_SET);
    record.password = percentEncode(pass, USERINFO_SET);
  }
  let hostPart = authority;
  let port = "";
  const portMatch = /:([^:\]]*)$/.exec(authority);
  if (portMatch) {
    hostPart = authority.slice(0, portMatch.index);
    port = portMatch[1];
  }
  const special = isSpecial(record.protocol);
  if (hostPart === "") {
    if (special && record.protocol !== "file:") throw invalidURL(input, base);
    if (at >= 0 || port) throw invalidURL(input, base);
  }
  const host = hostPart === "" ? "" : parseHost(hostPart, special);
  if (host === null) throw invalidURL(input, base);
  record.hostname = record.protocol === "file:" && host === "localhost" ? "" : host;
  record.hasHost = true;
  if (port !== "") {
    if (!/^[0-9]+$/.test(port)) throw invalidURL(input, base);
    const n = parseInt(port, 10);
    if (n > 65535) throw invalidURL(input, base);
    record.port = String(n) === SPECIAL_PORTS[record.protocol] ? "" : String(n);
  }
}

// Splits off `?query` and `#fragment` and stores them encoded.
function splitQueryFragment(rest, record) {
  const hash = rest.indexOf("#");
  if (hash >= 0) {
    record.fragment = percentEncode(rest.slice(hash + 1), FRAGMENT_SET);
    rest = rest.slice(0, hash);
  }
  const q = rest.indexOf("?");
  if (q >= 0) {
    record.query = percentEncode(rest.slice(q + 1), isSpecial(record.protocol) ? SPECIAL_QUERY_SET : QUERY_SET);
    rest = rest.slice(0, q);
  }
  return rest;
}

// ---- the fast path ---------------------------------------------------------------------
//
// Most URLs a server sees are plain `http(s)://host[:port]/path?query#fragment` in canonical
// form, for which the full parser's answer is the input itself, cut at its delimiters. One
// regular expression recognises them (in QuickJS one native regex run costs far less than a
// loop over the characters); anything it does not match goes to the full parser: upper case,
// credentials, default or zero-padded ports, backslashes, characters the parser would encode.
// Dot segments and IP addresses are checked after the match.
const SIMPLE_URL = /^(https?):\/\/([a-z0-9][a-z0-9.-]*)(?::([1-9][0-9]{0,4}))?(\/[^\x00-\x20\x7f-\uffff"<>`{}\\^|#?]*)?(?:\?([^\x00-\x20\x7f-\uffff"<>`{}\\^|#']*))?(?:#([^\x00-\x20\x7f-\uffff"<>`{}\\^|]*))?$/;
const DOT_SEGMENT = /(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)/i;
const NUMERIC_LAST_LABEL = /(?:^|\.)(?:[0-9]+|0x[0-9a-f]*)\.?$/;
const CANONICAL_IPV4 = /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

function parseSimpleURL(s) {
  const m = SIMPLE_URL.exec(s);
  if (m === null) return null;
  const protocol = m[1] + ":";
  const host = m[2];
  const port = m[3] === undefined ? "" : m[3];
  if (port !== "" && (Number(port) > 65535 || port === SPECIAL_PORTS[protocol])) return null;
  if (NUMERIC_LAST_LABEL.test(host) && !CANONICAL_IPV4.test(host)) return null;
  const path = m[4] === undefined ? "/" : m[4];
  if (DOT_SEGMENT.test(path)) return null;
  const record = emptyRecord();
  record.protocol = protocol;
  record.hostname = host;
  record.port = port;
  record.hasHost = true;
  record.path = path.slice(1).split("/");
  if (m[5] !== undefined) record.query = m[5];
  if (m[6] !== undefined) record.fragment = m[6];
  return record;
}

function parseURL(input, base) {
  if (typeof input === "string" && !base) {
    const simple = parseSimpleURL(input);
    if (simple !== null) return simple;
  }
  let s = String(input).replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, "").replace(/[\t\n\r]/g, "");
  const record = emptyRecord();
  const scheme = /^([A-Za-z][A-Za-z0-9+\-.]*):/.exec(s);
  if (scheme) {
    record.protocol = scheme[1].toLowerCase() + ":";
    let rest = s.slice(scheme[0].length);
    const special = isSpecial(record.protocol);
    if (special && record.protocol !== "file:" && base && base.protocol === record.protocol && !/^[/\\]/.test(rest)) {
      return parseRelative(rest, base, record, input);
    }
    if (record.protocol === "file:") return parseFile(rest, base && base.protocol === "file:" ? base : null, record, input);
    if (special) {
      rest = rest.replace(/^[/\\]*/, "");
      return parseAfterAuthorityStart(rest, record, input, base);
    }
    if (rest.startsWith("//")) return parseAfterAuthorityStart(rest.slice(2), record, input, base);
    if (rest.startsWith("/")) {
      rest = splitQueryFragment(rest, record);
      parsePath(rest.slice(1), record, record.path);
      return record;
    }
    rest = splitQueryFragment(rest, record);
    record.opaque = percentEncode(rest, C0);
    return record;
  }
  if (!base) throw invalidURL(input);
  if (base.opaque !== null) {
    if (!s.startsWith("#")) throw invalidURL(input, base.href);
    const out = { ...base, path: [], fragment: percentEncode(s.slice(1), FRAGMENT_SET) };
    return out;
  }
  record.protocol = base.protocol;
  if (record.protocol === "file:") return parseFile(s, base, record, input);
  return parseRelative(s, base, record, input);
}

function parseAfterAuthorityStart(rest, record, input, base) {
  const special = isSpecial(record.protocol);
  const end = rest.search(special ? /[/\\?#]/ : /[/?#]/);
  const authority = end >= 0 ? rest.slice(0, end) : rest;
  rest = end >= 0 ? rest.slice(end) : "";
  parseAuthority(authority, record, input, base && base.href);
  rest = splitQueryFragment(rest, record);
  if (rest !== "") parsePath(rest.slice(1), record, record.path);
  else if (special) record.path = [""];
  return record;
}

function parseRelative(s, base, record, input) {
  const special = isSpecial(record.protocol);
  const slash = special ? /^[/\\]/ : /^\//;
  if (special ? /^[/\\]{2}/.test(s) : s.startsWith("//")) {
    return parseAfterAuthorityStart(s.slice(2), record, input, base);
  }
  record.username = base.username;
  record.password = base.password;
  record.hostname = base.hostname;
  record.port = base.port;
  record.hasHost = base.hasHost;
  if (slash.test(s)) {
    const rest = splitQueryFragment(s, record);
    parsePath(rest.slice(1), record, record.path);
    return record;
  }
  const rest = splitQueryFragment(s, record);
  record.path = base.path.slice();
  if (rest === "") {
    if (record.query === null) record.query = base.query;
    return record;
  }
  record.path.pop();
  parsePath(rest, record, record.path);
  return record;
}

function parseFile(s, base, record, input) {
  record.hasHost = true;
  if (/^[/\\]{2}/.test(s)) {
    const rest = s.slice(2);
    const end = rest.search(/[/\\?#]/);
    const authority = end >= 0 ? rest.slice(0, end) : rest;
    if (isWindowsDriveLetter(authority)) {
      const tail = splitQueryFragment(rest, record);
      parsePath(tail, record, record.path);
      return record;
    }
    const host = authority === "" ? "" : parseHost(authority, true);
    if (host === null) throw invalidURL(input);
    record.hostname = host === "localhost" ? "" : host;
    const tail = splitQueryFragment(end >= 0 ? rest.slice(end) : "", record);
    parsePath(tail.slice(1), record, record.path);
    return record;
  }
  if (base) {
    record.hostname = base.hostname;
    if (/^[/\\]/.test(s)) {
      const tail = splitQueryFragment(s, record);
      parsePath(tail.slice(1), record, record.path);
      return record;
    }
    const tail = splitQueryFragment(s, record);
    record.path = base.path.slice();
    if (tail === "") {
      if (record.query === null) record.query = base.query;
      return record;
    }
    record.path.pop();
    parsePath(tail, record, record.path);
    return record;
  }
  const tail = splitQueryFragment(s, record);
  parsePath(tail.replace(/^[/\\]/, ""), record, record.path);
  return record;
}

function pathString(record) {
  if (record.opaque !== null) return record.opaque;
  if (record.path.length === 0) return "";
  let path = "/" + record.path.join("/");
  if (!record.hasHost && record.path.length > 1 && record.path[0] === "") path = "/." + path;
  return path;
}

function serialize(record, excludeFragment) {
  let out = record.protocol;
  if (record.hasHost) {
    out += "//";
    if (record.username || record.password) {
      out += record.username;
      if (record.password) out += ":" + record.password;
      out += "@";
    }
    out += record.hostname;
    if (record.port) out += ":" + record.port;
  }
  out += pathString(record);
  if (record.query !== null) out += "?" + record.query;
  if (!excludeFragment && record.fragment !== null) out += "#" + record.fragment;
  return out;
}

// ---- URLSearchParams -------------------------------------------------------------------

function formDecode(string) {
  const replaced = string.indexOf("+") >= 0 ? string.split("+").join(" ") : string;
  if (!replaced.includes("%")) return replaced;
  try {
    return decodeURIComponent(replaced);
  } catch {
    return percentDecode(replaced);
  }
}

function parseFormURLEncoded(input) {
  const list = [];
  for (const piece of input.split("&")) {
    if (piece === "") continue;
    const eq = piece.indexOf("=");
    const name = eq >= 0 ? piece.slice(0, eq) : piece;
    const value = eq >= 0 ? piece.slice(eq + 1) : "";
    list.push([formDecode(name), formDecode(value)]);
  }
  return list;
}

const FORM_SAFE = /^[A-Za-z0-9*\-._]*$/;

function formEncode(string) {
  string = wellFormed(string);
  if (FORM_SAFE.test(string)) return string;
  let out = "";
  for (const ch of string) {
    const cp = ch.codePointAt(0);
    if (cp === 0x20) out += "+";
    else if ((cp >= 0x30 && cp <= 0x39) || (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a) || ch === "*" || ch === "-" || ch === "." || ch === "_") out += ch;
    else for (const b of utf8Encode(ch)) out += "%" + HEX[b >> 4] + HEX[b & 15];
  }
  return out;
}

function serializeForm(list) {
  return list.map(([k, v]) => formEncode(k) + "=" + formEncode(v)).join("&");
}

let searchParamsAttach;

class URLSearchParams {
  #list = [];
  #url = null;

  constructor(init = "") {
    if (init instanceof URLSearchParams) {
      this.#list = pairsCopy(init.#list);
    } else if (init !== null && (typeof init === "object" || typeof init === "function")) {
      if (typeof init[Symbol.iterator] === "function") {
        for (const pair of init) {
          const items = Array.from(pair);
          if (items.length !== 2) throw new TypeError("URLSearchParams: each pair must have exactly two items");
          this.#list.push([String(items[0]), String(items[1])]);
        }
      } else {
        for (const key of Reflect.ownKeys(init)) {
          const desc = Object.getOwnPropertyDescriptor(init, key);
          if (desc && desc.enumerable) this.#list.push([String(key), String(init[key])]);
        }
      }
    } else {
      let s = String(init);
      if (s.startsWith("?")) s = s.slice(1);
      this.#list = parseFormURLEncoded(s);
    }
  }

  static {
    searchParamsAttach = (params, url, query) => {
      params.#url = url;
      params.#list = query ? parseFormURLEncoded(query) : [];
    };
  }

  #update() {
    if (this.#url) urlSetQueryFromParams(this.#url, this.#list.length ? serializeForm(this.#list) : null);
  }

  get size() {
    return this.#list.length;
  }

  append(name, value) {
    this.#list.push([String(name), String(value)]);
    this.#update();
  }

  delete(name, value) {
    name = String(name);
    if (value !== undefined) value = String(value);
    this.#list = pairsWithout(this.#list, (pair) => pair[0] === name && (value === undefined || pair[1] === value));
    this.#update();
  }

  get(name) {
    const index = pairIndex(this.#list, String(name));
    return index < 0 ? null : this.#list[index][1];
  }

  getAll(name) {
    return pairValues(this.#list, String(name));
  }

  has(name, value) {
    name = String(name);
    if (value === undefined) return pairIndex(this.#list, name) >= 0;
    value = String(value);
    for (let i = 0; i < this.#list.length; i++) if (this.#list[i][0] === name && this.#list[i][1] === value) return true;
    return false;
  }

  set(name, value) {
    this.#list = pairsSet(this.#list, [String(name), String(value)]);
    this.#update();
  }

  sort() {
    const indexed = this.#list.map((pair, i) => [pair, i]);
    indexed.sort(([a, i], [b, j]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : i - j));
    this.#list = indexed.map(([pair]) => pair);
    this.#update();
  }

  forEach(callback, thisArg) {
    for (let i = 0; i < this.#list.length; i++) callback.call(thisArg, this.#list[i][1], this.#list[i][0], this);
  }

  *keys() {
    for (let i = 0; i < this.#list.length; i++) yield this.#list[i][0];
  }

  *values() {
    for (let i = 0; i < this.#list.length; i++) yield this.#list[i][1];
  }

  *entries() {
    for (let i = 0; i < this.#list.length; i++) yield [this.#list[i][0], this.#list[i][1]];
  }

  [Symbol.iterator]() {
    return this.entries();
  }

  toString() {
    return serializeForm(this.#list);
  }

  [inspectSymbol]() {
    const entries = this.#list.map(([k, v]) => inspect(k) + " => " + inspect(v));
    return "URLSearchParams {" + (entries.length ? " " + entries.join(", ") + " " : "") + "}";
  }
}
tag(URLSearchParams, "URLSearchParams");

// ---- URL -------------------------------------------------------------------------------

let urlSetQueryFromParams;
let urlRecord;

class URL {
  #r;
  #params = null;

  constructor(url, base) {
    if (arguments.length === 0) throw new TypeError("URL: 1 argument required, but only 0 present");
    let baseRecord = null;
    if (base !== undefined) {
      baseRecord = base instanceof URL ? base.#r : parseURL(String(base), null);
      baseRecord = { ...baseRecord, href: String(base) };
    }
    this.#r = parseURL(url instanceof URL ? url.href : String(url), baseRecord);
  }

  static {
    urlSetQueryFromParams = (url, query) => {
      url.#r.query = query;
    };
    urlRecord = (url) => url.#r;
  }

  static canParse(url, base) {
    try {
      new URL(url, base);
      return true;
    } catch {
      return false;
    }
  }

  static parse(url, base) {
    try {
      return new URL(url, base);
    } catch {
      return null;
    }
  }

  #reparse(href) {
    this.#r = parseURL(href, null);
    if (this.#params) searchParamsAttach(this.#params, this, this.#r.query);
  }

  get href() {
    return serialize(this.#r, false);
  }

  set href(value) {
    this.#reparse(String(value));
  }

  get origin() {
    const r = this.#r;
    if (r.protocol === "blob:") {
      const inner = URL.parse(pathString(r));
      return inner && (inner.protocol === "http:" || inner.protocol === "https:") ? inner.origin : "null";
    }
    if (!isSpecial(r.protocol) || r.protocol === "file:") return "null";
    return r.protocol + "//" + r.hostname + (r.port ? ":" + r.port : "");
  }

  get protocol() {
    return this.#r.protocol;
  }

  set protocol(value) {
    const m = /^([A-Za-z][A-Za-z0-9+\-.]*)/.exec(String(value));
    if (!m) return;
    const protocol = m[1].toLowerCase() + ":";
    if (isSpecial(protocol) !== isSpecial(this.#r.protocol)) return;
    if (protocol === "file:" && (this.#r.username || this.#r.password || this.#r.port)) return;
    this.#r.protocol = protocol;
    if (this.#r.port === SPECIAL_PORTS[protocol]) this.#r.port = "";
  }

  get username() {
    return this.#r.username;
  }

  set username(value) {
    if (!this.#r.hasHost || this.#r.hostname === "" || this.#r.protocol === "file:") return;
    this.#r.username = percentEncode(String(value), USERINFO_SET);
  }

  get password() {
    return this.#r.password;
  }

  set password(value) {
    if (!this.#r.hasHost || this.#r.hostname === "" || this.#r.protocol === "file:") return;
    this.#r.password = percentEncode(String(value), USERINFO_SET);
  }

  get host() {
    return this.#r.hostname + (this.#r.port ? ":" + this.#r.port : "");
  }

  set host(value) {
    if (this.#r.opaque !== null) return;
    const input = String(value).split(/[/\\?#]/)[0];
    const copy = { ...this.#r, path: this.#r.path };
    try {
      parseAuthority(input, copy, input);
    } catch {
      return;
    }
    this.#r.hostname = copy.hostname;
    this.#r.port = /:[^\]]*$/.test(input) ? copy.port : this.#r.port;
    this.#r.hasHost = true;
  }

  get hostname() {
    return this.#r.hostname;
  }

  set hostname(value) {
    if (this.#r.opaque !== null) return;
    const input = String(value).split(/[/\\?#:]/)[0];
    const host = input === "" ? (isSpecial(this.#r.protocol) && this.#r.protocol !== "file:" ? null : "") : parseHost(input, isSpecial(this.#r.protocol));
    if (host === null) return;
    this.#r.hostname = host;
    this.#r.hasHost = true;
  }

  get port() {
    return this.#r.port;
  }

  set port(value) {
    if (!this.#r.hasHost || this.#r.hostname === "" || this.#r.protocol === "file:") return;
    const digits = /^[0-9]*/.exec(String(value))[0];
    if (digits === "") {
      if (String(value) === "") this.#r.port = "";
      return;
    }
    const n = parseInt(digits, 10);
    if (n > 65535) return;
    this.#r.port = String(n) === SPECIAL_PORTS[this.#r.protocol] ? "" : String(n);
  }

  get pathname() {
    return pathString(this.#r);
  }

  set pathname(value) {
    if (this.#r.opaque !== null) return;
    const path = [];
    let s = String(value).replace(/[\t\n\r]/g, "");
    if (isSpecial(this.#r.protocol) ? /^[/\\]/.test(s) : s.startsWith("/")) s = s.slice(1);
    parsePath(s.replace(/\?/g, "%3F").replace(/#/g, "%23"), this.#r, path);
    this.#r.path = path;
  }

  get search() {
    const q = this.#r.query;
    return q === null || q === "" ? "" : "?" + q;
  }

  set search(value) {
    let s = String(value);
    if (s === "") this.#r.query = null;
    else {
      if (s.startsWith("?")) s = s.slice(1);
      this.#r.query = percentEncode(s.replace(/[\t\n\r]/g, ""), isSpecial(this.#r.protocol) ? SPECIAL_QUERY_SET : QUERY_SET);
    }
    if (this.#params) searchParamsAttach(this.#params, this, this.#r.query);
  }

  get searchParams() {
    if (!this.#params) {
      this.#params = new URLSearchParams();
      searchParamsAttach(this.#params, this, this.#r.query);
    }
    return this.#params;
  }

  get hash() {
    const f = this.#r.fragment;
    return f === null || f === "" ? "" : "#" + f;
  }

  set hash(value) {
    let s = String(value);
    if (s === "") {
      this.#r.fragment = null;
      return;
    }
    if (s.startsWith("#")) s = s.slice(1);
    this.#r.fragment = percentEncode(s.replace(/[\t\n\r]/g, ""), FRAGMENT_SET);
  }

  toString() {
    return this.href;
  }

  toJSON() {
    return this.href;
  }

  [inspectSymbol]() {
    const fields = ["href", "origin", "protocol", "username", "password", "host", "hostname", "port", "pathname", "search", "hash"];
    return "URL { " + fields.map((f) => f + ": " + inspect(this[f])).join(", ") + " }";
  }
}
tag(URL, "URL");

defineGlobal("URL", URL);
defineGlobal("URLSearchParams", URLSearchParams);
