//! The route table through the public API: the original's matching table (spec §2.4), priority,
//! prefix, collisions, and odd request paths that must never panic.

use std::path::PathBuf;

use wws_router::{Match, RouteKind, RouterError, Routes};

/// The original's `tests/data/params` project.
const PARAMS: [&str; 7] = [
    "[id].wasm",
    "[id]/fixed.wasm",
    "[id]/sub.wasm",
    "fixed.wasm",
    "sub/[...all].wasm",
    "sub/[id].wasm",
    "sub/sub/[...all].wasm",
];

fn routes(files: &[&str], prefix: &str) -> Routes {
    Routes::new(files.iter().map(PathBuf::from).collect(), prefix).expect("routes")
}

fn best<'a>(routes: &'a Routes, path: &str) -> Option<&'a str> {
    routes.find(path).map(|found| found.route.path.as_str())
}

fn params<'a>(found: &'a Match<'_>) -> Vec<(&'a str, &'a str)> {
    found
        .params
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect()
}

#[test]
fn spec_best_route_table() {
    let routes = routes(&PARAMS, "");
    for (request, expected) in [
        ("/any", Some("/[id]")),
        ("/fixed", Some("/fixed")),
        ("/any/fixed", Some("/[id]/fixed")),
        ("/any/sub", Some("/[id]/sub")),
        ("/sub/any", Some("/sub/[id]")),
        ("/sub/any/catch/all/routes", Some("/sub/[...all]")),
        ("/sub/sub/any/catch/all/routes", Some("/sub/sub/[...all]")),
        ("/donot/exist", None),
    ] {
        assert_eq!(best(&routes, request), expected, "request {request}");
    }
}

#[test]
fn spec_priority_order() {
    let routes = routes(&PARAMS, "");
    let order: Vec<&str> = routes.iter().map(|route| route.path.as_str()).collect();
    assert_eq!(
        order,
        [
            "/fixed",
            "/[id]",
            "/sub/[id]",
            "/[id]/fixed",
            "/[id]/sub",
            "/sub/sub/[...all]",
            "/sub/[...all]",
        ]
    );
    let kinds: Vec<RouteKind> = routes.iter().map(|route| route.kind).collect();
    assert!(kinds.is_sorted(), "{kinds:?}");
}

#[test]
fn index_and_get_agree() {
    let routes = routes(&PARAMS, "");
    assert_eq!(routes.len(), PARAMS.len());
    assert!(!routes.is_empty());
    let found = routes.find("/sub/x").expect("match");
    assert_eq!(routes.get(found.index), found.route);
    assert_eq!(found.route.file, PathBuf::from("sub/[id].wasm"));
}

#[test]
fn params_are_extracted_and_decoded() {
    let routes = routes(&PARAMS, "");
    let found = routes.find("/hello%20world").expect("match");
    assert_eq!(params(&found), [("id", "hello world")]);
    assert_eq!(found.param("id"), Some("hello world"));
    assert_eq!(found.param("nope"), None);

    let found = routes.find("/a%2Fb/fixed").expect("match");
    assert_eq!(params(&found), [("id", "a/b")]);

    let found = routes.find("/sub/any/catch/all/routes").expect("match");
    assert_eq!(params(&found), [("all", "any/catch/all/routes")]);

    let found = routes.find("//sub//any///catch/all/").expect("match");
    assert_eq!(found.route.path, "/sub/[...all]");
    assert_eq!(params(&found), [("all", "any/catch/all")]);

    assert!(routes.find("/fixed").expect("match").params.is_empty());
}

#[test]
fn several_params_in_path_order() {
    let routes = routes(&["[resource]/[id]/show.js"], "");
    let found = routes.find("/users/42/show").expect("match");
    assert_eq!(params(&found), [("resource", "users"), ("id", "42")]);
    assert!(routes.find("/users/42").is_none());
    assert!(routes.find("/users/42/edit").is_none());
}

#[test]
fn trailing_and_repeated_slashes_and_query() {
    let routes = routes(&["about.js", "index.js"], "");
    for request in [
        "/about",
        "/about/",
        "//about",
        "/about//",
        "/about?x=1",
        "/about/?a/b",
    ] {
        assert_eq!(best(&routes, request), Some("/about"), "request {request}");
    }
    for request in ["/", "", "//", "/?q"] {
        assert_eq!(best(&routes, request), Some("/"), "request {request:?}");
    }
    assert_eq!(best(&routes, "/about/more"), None);
}

#[test]
fn static_segments_match_percent_encoded_requests() {
    let routes = routes(&["hello world.js", "café/[id].js"], "");
    assert_eq!(best(&routes, "/hello%20world"), Some("/hello world"));
    assert_eq!(best(&routes, "/caf%C3%A9/1"), Some("/café/[id]"));
    assert_eq!(best(&routes, "/café/1"), Some("/café/[id]"));
    assert_eq!(best(&routes, "/hello%2520world"), None);
}

#[test]
fn root_catch_all_serves_the_root_but_not_deeper_ones() {
    let routes = routes(&["[...slug]/index.js", "sub/[...all].js"], "");
    let found = routes.find("/").expect("root catch-all serves /");
    assert_eq!(found.route.path, "/[...slug]");
    assert_eq!(params(&found), [("slug", "")]);
    // `/sub` alone is not served by `/sub/[...all]`, so it falls to the root catch-all.
    let found = routes.find("/sub").expect("match");
    assert_eq!(found.route.path, "/[...slug]");
    assert_eq!(params(&found), [("slug", "sub")]);
    let found = routes.find("/sub/x").expect("match");
    assert_eq!(found.route.path, "/sub/[...all]");

    let only_sub = self::routes(&["sub/[...all].js"], "");
    assert!(only_sub.find("/sub").is_none());
    assert!(only_sub.find("/sub/").is_none());
}

#[test]
fn more_specific_routes_win() {
    let routes = routes(&["index.js", "[id].js", "[...all].js", "about.js"], "");
    assert_eq!(best(&routes, "/"), Some("/"));
    assert_eq!(best(&routes, "/about"), Some("/about"));
    assert_eq!(best(&routes, "/x"), Some("/[id]"));
    assert_eq!(best(&routes, "/x/y"), Some("/[...all]"));
}

#[test]
fn index_folders_are_routes() {
    let routes = routes(
        &["examples.js", "examples/index/index.js", "a/index/b.js"],
        "",
    );
    assert_eq!(best(&routes, "/examples"), Some("/examples"));
    assert_eq!(best(&routes, "/examples/index"), Some("/examples/index"));
    assert_eq!(best(&routes, "/a/index/b"), Some("/a/index/b"));
    assert_eq!(best(&routes, "/a/b"), None);
}

#[test]
fn prefix_applies_to_every_route_and_its_root() {
    let routes = routes(
        &["index.js", "about.js", "[id]/x.js", "[...all].js"],
        "app/",
    );
    let paths: Vec<&str> = routes.iter().map(|route| route.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/app", "/app/about", "/app/[id]/x", "/app/[...all]"]
    );
    assert_eq!(best(&routes, "/app"), Some("/app"));
    assert_eq!(best(&routes, "/app/"), Some("/app"));
    assert_eq!(best(&routes, "/app/about"), Some("/app/about"));
    assert_eq!(best(&routes, "/app/7/x"), Some("/app/[id]/x"));
    assert_eq!(best(&routes, "/app/7/y"), Some("/app/[...all]"));
    for outside in ["/", "/about", "/apps", "/other/app", "/7/x"] {
        assert_eq!(best(&routes, outside), None, "request {outside}");
    }
}

#[test]
fn strip_prefix_gives_the_path_below_the_mount_point() {
    let routes = routes(&["index.js"], "/app/test/");
    assert_eq!(routes.prefix(), "/app/test");
    for (request, rest) in [
        ("/app/test", Some("/")),
        ("/app/test/", Some("/")),
        ("/app/test/main.css", Some("/main.css")),
        ("//app//test//a/b/", Some("//a/b/")),
        ("/app/te%73t/x", Some("/x")),
        ("/app/tests/x", None),
        ("/app", None),
        ("/", None),
        ("", None),
    ] {
        assert_eq!(routes.strip_prefix(request), rest, "request {request:?}");
    }
    let bare = self::routes(&["index.js"], "");
    assert_eq!(bare.prefix(), "");
    assert_eq!(bare.strip_prefix("/a/b"), Some("/a/b"));
    assert_eq!(bare.strip_prefix(""), Some("/"));
}

#[test]
fn catch_all_under_a_prefix_serves_the_prefix_root() {
    let routes = routes(&["[...all].js"], "/app/test");
    let found = routes.find("/app/test/").expect("match");
    assert_eq!(params(&found), [("all", "")]);
    let found = routes.find("/app/test/a/b").expect("match");
    assert_eq!(params(&found), [("all", "a/b")]);
    assert!(routes.find("/app").is_none());
}

fn collision(files: &[&str]) -> (String, String, String) {
    match Routes::new(files.iter().map(PathBuf::from).collect(), "") {
        Err(RouterError::Collision {
            route,
            first,
            second,
        }) => (
            route,
            first.to_string_lossy().into_owned(),
            second.to_string_lossy().into_owned(),
        ),
        other => panic!("{files:?}: expected a collision, got {other:?}"),
    }
}

#[test]
fn collisions_name_both_files() {
    assert_eq!(
        collision(&["about.js", "about/index.js"]),
        // Paths sort by component: `about` < `about.js`.
        ("/about".into(), "about/index.js".into(), "about.js".into())
    );
    assert_eq!(
        collision(&["index.wasm", "index.js"]),
        ("/".into(), "index.js".into(), "index.wasm".into())
    );
    let (route, first, second) = collision(&["[slug].js", "[id].js"]);
    assert_eq!((first.as_str(), second.as_str()), ("[id].js", "[slug].js"));
    assert_eq!(route, "/[slug]");
    let (_, first, second) = collision(&["a/[...x].js", "a/[...y]/index.wasm"]);
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("a/[...x].js", "a/[...y]/index.wasm")
    );
}

#[test]
fn collision_message_says_what_to_do() {
    let error =
        Routes::new(vec!["about.js".into(), "about/index.js".into()], "").expect_err("collision");
    let message = error.to_string();
    assert!(message.contains("about.js"), "{message}");
    assert!(message.contains("about/index.js") || message.contains("about\\index.js"));
    assert!(message.contains("rename or remove"), "{message}");
    assert!(!message.ends_with('.'), "{message}");
}

#[test]
fn different_shapes_do_not_collide() {
    let routes = routes(
        &[
            "[id].js",
            "[...all].js",
            "index.js",
            "[id]/index/x.js",
            "[id]/x.js",
        ],
        "",
    );
    assert_eq!(routes.len(), 5);
}

#[test]
fn invalid_segment_stops_the_table() {
    let result = Routes::new(vec!["ok.js".into(), "blog/post-[id].js".into()], "");
    match result {
        Err(error @ RouterError::InvalidSegment { .. }) => {
            assert!(error.to_string().contains("post-[id]"), "{error}");
        }
        other => panic!("expected InvalidSegment, got {other:?}"),
    }
}

#[test]
fn empty_table_finds_nothing() {
    let routes = Routes::new(Vec::new(), "").expect("routes");
    assert!(routes.is_empty());
    assert!(routes.find("/").is_none());
}

/// Odd request paths never panic; their params decode lossily.
#[test]
fn odd_paths_never_panic() {
    let routes = routes(&PARAMS, "");
    let catch_all = self::routes(&["[...all].js"], "/p");
    let long = "/a".repeat(10_000);
    let long_escapes = "%".repeat(50_000);
    let odd = [
        "",
        "/",
        "//",
        "///",
        "%",
        "/%",
        "/%zz",
        "/%z",
        "/%F",
        "/%FF",
        "/%C0%AE%C0%AE",
        "/%ED%A0%80",
        "/a/%",
        "/sub/%FF/%",
        "/?",
        "?",
        "/[id]",
        "/[...all]",
        "*",
        "..",
        "/../..",
        "/./.",
        "\\",
        "/\u{0}",
        "/é/ü",
        "/sub/sub",
        "/sub/sub/",
        long.as_str(),
        long_escapes.as_str(),
    ];
    for path in odd {
        let _ = routes.find(path);
        let _ = catch_all.find(path);
        let prefixed = format!("/p{path}");
        let _ = catch_all.find(&prefixed);
    }
    let found = routes.find("/%FF").expect("dynamic route");
    assert_eq!(params(&found), [("id", "\u{FFFD}")]);
    let found = routes.find("/%zz").expect("dynamic route");
    assert_eq!(params(&found), [("id", "%zz")]);
    let found = catch_all.find(&format!("/p{long}")).expect("catch-all");
    assert_eq!(found.params[0].1.len(), long.len() - 1);
}
