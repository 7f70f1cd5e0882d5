// encoding.js: TextEncoder, TextDecoder (UTF-8, as the Encoding standard's minimum), atob, btoa.
//
// The byte work is done by the host (Rust) in one call; JS only handles options and streaming.

const UTF8_LABELS = new Set(["utf-8", "utf8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "x-unicode20utf8"]);

class TextEncoder {
  get encoding() {
    return "utf-8";
  }

  encode(input = "") {
    return utf8Encode(input);
  }

  // Encodes as many whole code points of `source` as fit into `destination`.
  encodeInto(source, destination) {
    const string = wellFormed(String(source));
    let read = 0;
    let written = 0;
    const capacity = destination.length;
    for (let i = 0; i < string.length; ) {
      const cp = string.codePointAt(i);
      const units = cp > 0xffff ? 2 : 1;
      const size = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
      if (written + size > capacity) break;
      if (size === 1) destination[written] = cp;
      else if (size === 2) {
        destination[written] = 0xc0 | (cp >> 6);
        destination[written + 1] = 0x80 | (cp & 0x3f);
      } else if (size === 3) {
        destination[written] = 0xe0 | (cp >> 12);
        destination[written + 1] = 0x80 | ((cp >> 6) & 0x3f);
        destination[written + 2] = 0x80 | (cp & 0x3f);
      } else {
        destination[written] = 0xf0 | (cp >> 18);
        destination[written + 1] = 0x80 | ((cp >> 12) & 0x3f);
        destination[written + 2] = 0x80 | ((cp >> 6) & 0x3f);
        destination[written + 3] = 0x80 | (cp & 0x3f);
      }
      written += size;
      read += units;
      i += units;
    }
    return { read, written };
  }
}
tag(TextEncoder, "TextEncoder");

// Length of the incomplete UTF-8 sequence at the end of `bytes` (0 when it ends cleanly).
function incompleteTail(bytes) {
  const n = bytes.length;
  for (let back = 1; back <= Math.min(3, n); back++) {
    const b = bytes[n - back];
    if ((b & 0xc0) === 0x80) continue;
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

class TextDecoder {
  #fatal;
  #ignoreBOM;
  #pending = null;
  #started = false;

  constructor(label = "utf-8", options = {}) {
    const name = String(label).trim().toLowerCase();
    if (!UTF8_LABELS.has(name)) throw new RangeError(`TextDecoder: the encoding "${label}" is not supported (only utf-8 is)`);
    this.#fatal = Boolean(options && options.fatal);
    this.#ignoreBOM = Boolean(options && options.ignoreBOM);
  }

  get encoding() {
    return "utf-8";
  }

  get fatal() {
    return this.#fatal;
  }

  get ignoreBOM() {
    return this.#ignoreBOM;
  }

  decode(input, options = {}) {
    let bytes = input === undefined ? new Uint8Array(0) : viewOf(input);
    if (bytes === null) throw new TypeError("TextDecoder.decode: the input must be an ArrayBuffer, a typed array or a DataView");
    const stream = Boolean(options && options.stream);
    if (this.#pending) {
      bytes = concatBytes([this.#pending, bytes]);
      this.#pending = null;
    }
    if (stream) {
      const tail = incompleteTail(bytes);
      if (tail) {
        this.#pending = bytes.slice(bytes.length - tail);
        bytes = bytes.subarray(0, bytes.length - tail);
      }
    }
    if (!this.#started && !this.#ignoreBOM && bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
      bytes = bytes.subarray(3);
    }
    if (bytes.length) this.#started = true;
    if (!stream) this.#started = false;
    try {
      return host.utf8Decode(bytes, this.#fatal);
    } catch (e) {
      throw new TypeError("TextDecoder.decode: the data is not valid UTF-8");
    }
  }
}
tag(TextDecoder, "TextDecoder");

function btoa(data) {
  if (arguments.length === 0) throw new TypeError("btoa: 1 argument required, but only 0 present");
  const out = host.btoa(String(data));
  if (out == null) throw new DOMException("btoa: the string contains characters outside of the Latin1 range", "InvalidCharacterError");
  return out;
}

function atob(data) {
  if (arguments.length === 0) throw new TypeError("atob: 1 argument required, but only 0 present");
  const out = host.atob(String(data));
  if (out == null) throw new DOMException("atob: the string to be decoded is not correctly encoded", "InvalidCharacterError");
  return out;
}

defineGlobal("TextEncoder", TextEncoder);
defineGlobal("TextDecoder", TextDecoder);
defineGlobal("btoa", btoa);
defineGlobal("atob", atob);
