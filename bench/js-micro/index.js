// Cost of the JavaScript APIs a request uses, measured inside the engine: serve this folder
// with `wws bench/js-micro` and GET / (the first answer includes compilation; ask twice).
// Each line is the mean time of one call over many, in microseconds. Compare lines of one
// answer only: the machine's speed moves them all together.

const RUNS = 20000;

function time(label, f) {
  f(0);
  const start = performance.now();
  for (let i = 0; i < RUNS; i++) f(i);
  const us = ((performance.now() - start) * 1000) / RUNS;
  return `${us.toFixed(2).padStart(8)} µs  ${label}\n`;
}

addEventListener("fetch", (event) => {
  const request = event.request;
  const headers = new Headers({ "content-type": "text/plain" });
  const lines = [
    time("an empty function call (the floor)", () => {}),
    time("new Response(text)", () => new Response("Hello")),
    time("new Response(text, { status, headers })", () => new Response("Hello", { status: 201, headers: { "x-id": "1" } })),
    time("Response.json(object)", () => Response.json({ ok: true, id: 1 })),
    time("new Headers(object with one entry)", () => new Headers({ "content-type": "application/json" })),
    time("headers.get(name)", () => headers.get("content-type")),
    time("headers.has(name)", () => headers.has("content-type")),
    time("request.headers.get(name)", () => request.headers.get("accept")),
    time("new URL(request.url).searchParams.get(name)", () => new URL(request.url).searchParams.get("q")),
    time("new FetchEvent", () => new FetchEvent("fetch", { request })),
    time("new Request(url)", () => new Request("http://localhost/a?b=1")),
    time("JSON.stringify(small object)", () => JSON.stringify({ ok: true, id: 1 })),
    time("Promise.resolve(1).then(f)", () => Promise.resolve(1).then((x) => x)),
  ];
  event.respondWith(new Response(lines.join("")));
});
