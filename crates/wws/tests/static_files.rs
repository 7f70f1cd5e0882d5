//! Static files from `public/`: content types, folder index, custom 404, precedence over
//! dynamic routes, and no way out of the folder.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use wws_test_support::Wws;
use wws_test_support::fixtures::Project;

fn project() -> Project {
    let p = Project::new();
    p.wasm("index.wasm", "hello");
    p.wasm("[id].wasm", "params");
    p.file("public/main.css", "body { color: red }");
    p.file("public/app.js", "console.log(1)");
    p.file("public/about/index.html", "<h1>About</h1>");
    p.file("public/404.html", "<h1>Not here</h1>");
    p.file("public/.hidden", "secret");
    p.file("index.toml", "version = \"1\"\n");
    p.file("README.md", "private");
    p
}

#[test]
fn files_types_index_and_404() {
    let p = project();
    let wws = Wws::start(p.path());
    let resp = wws.get("/main.css");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(resp.text().unwrap(), "body { color: red }");
    let resp = wws.get("/app.js");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert_eq!(wws.get_text("/about", 200), "<h1>About</h1>");
    assert_eq!(wws.get_text("/about/", 200), "<h1>About</h1>");
    // A static route beats public/index.html; the dynamic one loses to a real file.
    assert_eq!(wws.get_text("/", 200), "Hello from wws");
    let resp = wws.get("/nothing/here/at/all");
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.text().unwrap(), "<h1>Not here</h1>");
}

#[test]
fn no_way_out_of_public() {
    let p = project();
    let wws = Wws::start(p.path());
    for path in [
        "/../README.md",
        "/%2e%2e/README.md",
        "/%2E%2E/%2E%2E/etc/passwd",
        "/%C0AE%C0AE%C0AFREADME.md",
        "/..%2fREADME.md",
        "/public/../README.md",
        "/index.toml",
        "/index.wasm",
        "/.hidden",
        "//etc/passwd",
        "/%2Fetc%2Fpasswd",
    ] {
        let resp = wws.get(path);
        let status = resp.status().as_u16();
        let body = resp.text().unwrap();
        assert!(
            !body.contains("private") && !body.contains("secret") && !body.contains("root:"),
            "{path} leaked: {body}"
        );
        // Either the custom 404 or a worker answered for a single dynamic segment.
        assert!(
            status == 404 || (status == 200 && body.starts_with('{')),
            "{path}: {status} {body}"
        );
    }
}

#[test]
fn files_changed_replaced_or_removed_while_serving_are_served_as_they_are_now() {
    let p = project();
    // Two segments: no worker route matches, so a missing file is the 404 page.
    p.file("public/css/site.css", "body { color: red }");
    let wws = Wws::start(p.path());
    assert_eq!(wws.get_text("/css/site.css", 200), "body { color: red }");
    // Served again from memory, then rewritten in place: the new contents.
    assert_eq!(wws.get_text("/css/site.css", 200), "body { color: red }");
    p.file("public/css/site.css", "body { color: blue; margin: 0 }");
    assert_eq!(
        wws.get_text("/css/site.css", 200),
        "body { color: blue; margin: 0 }"
    );
    // Replaced by another file of the same size (a rename over it): the new one.
    let replacement = p.path().join("public/css/.next.css");
    std::fs::write(&replacement, "body { color: gray; margin: 0 }").unwrap();
    std::fs::rename(&replacement, p.path().join("public/css/site.css")).unwrap();
    assert_eq!(
        wws.get_text("/css/site.css", 200),
        "body { color: gray; margin: 0 }"
    );
    // Removed: the custom 404, and the new one once the 404 page itself changes.
    std::fs::remove_file(p.path().join("public/css/site.css")).unwrap();
    assert_eq!(wws.get_text("/css/site.css", 404), "<h1>Not here</h1>");
    p.file("public/404.html", "<h1>Gone</h1>");
    assert_eq!(wws.get_text("/css/site.css", 404), "<h1>Gone</h1>");
    // Added after the start: served.
    p.file("public/css/new.css", "new");
    assert_eq!(wws.get_text("/css/new.css", 200), "new");
}

#[test]
fn caches_revalidate_with_304_and_players_get_byte_ranges() {
    let p = project();
    let wws = Wws::start(p.path());
    let client = wws_test_support::wws::client();
    let first = wws.get("/main.css");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let modified = first.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(first.headers()["accept-ranges"], "bytes");

    for (name, value) in [("if-none-match", &etag), ("if-modified-since", &modified)] {
        let resp = client
            .get(wws.url("/main.css"))
            .header(name, value)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 304, "{name}");
        assert_eq!(resp.headers()["etag"], etag.as_str());
        assert!(resp.text().unwrap().is_empty());
    }

    let part = client
        .get(wws.url("/main.css"))
        .header("range", "bytes=7-11")
        .send()
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 7-11/19");
    assert_eq!(part.text().unwrap(), "color");
    let outside = client
        .get(wws.url("/main.css"))
        .header("range", "bytes=100-")
        .send()
        .unwrap();
    assert_eq!(outside.status(), 416);
    assert_eq!(outside.headers()["content-range"], "bytes */19");

    // A changed file has a new validator: the old one no longer gets 304.
    p.file("public/main.css", "body { color: blue; }");
    let resp = client
        .get(wws.url("/main.css"))
        .header("if-none-match", &etag)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_ne!(resp.headers()["etag"], etag.as_str());
    assert_eq!(resp.text().unwrap(), "body { color: blue; }");
}

/// Files answer GET and HEAD only: another method on a file is 405 with `Allow`, or goes to
/// the dynamic worker whose route also matches. A symlink in `public/` may point elsewhere
/// in the project (a build folder), never out of it.
#[cfg(unix)]
#[test]
fn only_reads_get_files_and_symlinks_stay_in_the_project() {
    let p = project();
    p.file("dist/app.css", "built");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink("../dist", p.path().join("public/build")).unwrap();
    std::os::unix::fs::symlink(outside.path(), p.path().join("public/out")).unwrap();
    let wws = Wws::start(p.path());
    assert_eq!(wws.get_text("/build/app.css", 200), "built");
    assert_eq!(wws.get("/out/secret.txt").status(), 404);

    let client = wws_test_support::wws::client();
    let resp = client.post(wws.url("/about/index.html")).send().unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
    let resp = client.head(wws.url("/about/index.html")).send().unwrap();
    assert_eq!(resp.status(), 200);
    // `[id].wasm` matches /main.css too: a DELETE is the worker's, not the file's.
    let resp = client.delete(wws.url("/main.css")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().unwrap();
    assert!(
        body.contains("main.css") && !body.contains("color"),
        "{body}"
    );
}
