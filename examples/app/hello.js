// A JavaScript worker: runs on the engine embedded in wws, nothing to install.
// GET /hello?name=Ada  ->  JSON greeting, with a visit counter in the `counter` namespace.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const name = url.searchParams.get("name") ?? "world";
    const visits = Number((await env.KV.get("js-visits")) ?? 0) + 1;
    await env.KV.put("js-visits", String(visits));
    return Response.json({ hello: name, visits, runtime: "javascript" });
  },
};
