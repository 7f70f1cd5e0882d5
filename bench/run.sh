#!/usr/bin/env bash
# bench/run.sh: measure wws against a native hyper hello-world in one run (see bench/README.md).
#
#   bench/run.sh [--quick] [--record] [--no-build] [--duration S] [--runs N]
#
#   --quick       smoke run: 2 s per wrk run, fewer requests for the RSS figure, one warm start
#   --record      rewrite the "Latest results" section of bench/README.md with this run
#   --no-build    use the binaries and guests already built (fails if one is missing)
#   --duration S  seconds per measured wrk run (default 5)
#   --runs N      measured runs per row, alternating within a batch (default 2)
#
# Builds wws (release), the native baseline and the guest hello workers, starts every server on
# port 0 on 127.0.0.1, waits for its ready line, checks one response, warms it up, then runs wrk
# alternately on native and on each scenario, and prints markdown tables. Every server it
# starts is killed on exit.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/wws/target}
if [[ -n ${CARGO_TARGET_DIR:-} ]]; then BENCH_TARGET=$CARGO_TARGET_DIR/bench; else BENCH_TARGET=$HOME/.cache/wws/target-bench; fi
TOOLS=(python3 "$BENCH/lib/tools.py")
ARGS=("$@")

DURATION=5        # seconds per measured wrk run
WARMUP=1          # seconds of wrk before a server's first measured run
RUNS=2            # measured runs per row, alternating within a batch
RSS_TARGET=100000 # requests served between the warm and the last RSS reading
RSS_WARM=10000    # requests served before the warm RSS reading
RSS_CAP=60        # seconds at most for the RSS figure
WARM_STARTS=3     # warm starts in the startup figure (the median is reported)
START_TIMEOUT=300 # seconds a server may take to print its ready line (first compile included)
RECORD=0 BUILD=1

SLICE=2           # seconds per wrk slice while counting requests for the RSS figure
while (($#)); do
  case $1 in
    --quick) DURATION=2 RSS_TARGET=20000 RSS_WARM=5000 RSS_CAP=15 WARM_STARTS=1 SLICE=1 ;;
    --record) RECORD=1 ;;
    --no-build) BUILD=0 ;;
    --duration) DURATION=${2:?--duration needs seconds}; shift ;;
    --runs) RUNS=${2:?--runs needs a count}; shift ;;
    -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $DURATION =~ ^[1-9][0-9]*$ && $RUNS =~ ^[1-9][0-9]*$ ]] ||
  { echo "bench: --duration and --runs take positive whole numbers" >&2; exit 2; }
CPU_RUNS=$((2 * RUNS)) # runs per row of the CPU-limit figure: its difference is small

# The servers run as a user would start them: no WWS_* variables, default log level.
unset RUST_LOG
for v in "${!WWS_@}"; do unset "$v"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/wws-bench.XXXXXX")
RESULTS=$WORK/results.jsonl
LOGS=$WORK/logs
mkdir -p "$LOGS" "$WORK/projects"
: >"$RESULTS"
PIDS=()

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if ((rc == 0)); then
    rm -rf "$WORK"
  else
    rm -rf "$WORK/projects" # the interpreters are large; the logs say what happened
    echo "bench: failed; logs kept in $LOGS" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*" >&2; }
note() { "${TOOLS[@]}" note --results "$RESULTS" --section "$1" --what "$2" --why "$3"; echo "  note: $2: $3" >&2; }

# ------------------------------------------------------------------------------------ servers

# start_server NAME PATTERN CMD...: starts CMD with stdout on a pipe, waits (no sleeping) for a
# line matching PATTERN whose first group is the base URL, then keeps draining the pipe into
# the log. Sets SERVER_PID and SERVER_URL; returns 1 (log tail on stderr) if CMD never got ready.
start_server() {
  local name=$1 pattern=$2 log=$LOGS/$1.log fd line
  shift 2
  SERVER_PID='' SERVER_URL=''
  exec {fd}< <(exec "$@" 2>>"$log" </dev/null)
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  while IFS= read -r -t "$START_TIMEOUT" -u "$fd" line; do
    printf '%s\n' "$line" >>"$log"
    if [[ $line =~ $pattern ]]; then SERVER_URL=${BASH_REMATCH[1]}; break; fi
  done
  if [[ -z $SERVER_URL ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    exec {fd}<&-
    echo "  $name did not start; last lines of $log:" >&2
    tail -n 5 "$log" | sed 's/^/    /' >&2
    return 1
  fi
  cat <&"$fd" >>"$log" &
  exec {fd}<&-
}

stop_server() { kill "$1" 2>/dev/null || true; }

WWS_READY='Start serving requests at (http://[^[:space:]]+)'
NATIVE_READY='listening on (http://[^[:space:]]+)'

# cpu_ticks PID: user + system CPU time of PID (all its threads) in clock ticks.
cpu_ticks() {
  local stat f
  stat=$(<"/proc/$1/stat") || return 1
  read -r -a f <<<"${stat##*) }" # fields from the 3rd on; utime and stime are the 14th and 15th
  echo $((f[11] + f[12]))
}

# run_wrk SECTION BATCH LABEL CONNS URL PID [ROUND]: one measured run into the results file.
run_wrk() {
  local c=$4 t=$(($4 < 2 ? $4 : 2)) before after ticks=()
  before=$(cpu_ticks "$6" 2>/dev/null || true)
  wrk -t"$t" -c"$c" -d"${DURATION}s" --timeout 10s -s "$BENCH/lib/report.lua" "$5/" >"$WORK/wrk.out" 2>&1 || {
    echo "  wrk failed for $3:" >&2
    cat "$WORK/wrk.out" >&2
    return 1
  }
  after=$(cpu_ticks "$6" 2>/dev/null || true)
  [[ -n $before && -n $after ]] && ticks=(--cpu-ticks $((after - before)))
  "${TOOLS[@]}" wrk-record --out "$WORK/wrk.out" --results "$RESULTS" --section "$1" --batch "$2" \
    --label "$3" --conns "$c" --pid "$6" --round "${7:-1}" "${ticks[@]}"
}

warm_up() { wrk -t1 -c"$2" -d"${WARMUP}s" --timeout 10s "$1/" >/dev/null 2>&1 || true; }

# ------------------------------------------------------------------------------------ build

step "tools"
if ! command -v wrk >/dev/null; then
  echo "  installing wrk with apt" >&2
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
WRK_VERSION=$(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2 || true)

# The source the binaries are built from (others may commit while the benchmark runs).
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || COMMIT="$COMMIT + uncommitted changes"
((BUILD)) || COMMIT="$COMMIT (binaries not rebuilt by this run)"

WWS=$TARGET/release/wws
NATIVE=$BENCH_TARGET/release/native-hello
GUESTS=$TARGET/guest-fixtures/wasm32-wasip1/release
if ((BUILD)); then
  step "building wws (release, $TARGET)"
  (cd "$ROOT" && nice cargo build --release -p wws --target-dir "$TARGET")
  step "building the native baseline ($BENCH_TARGET)"
  nice cargo build --release --manifest-path "$BENCH/native-hello/Cargo.toml" --target-dir "$BENCH_TARGET"
  step "building the guest hello workers (tests/fixtures/rust, small shadow stack)"
  # The same command and target dir as crates/test-support/src/fixtures.rs, so tests reuse it.
  env -u CARGO_ENCODED_RUSTFLAGS RUSTFLAGS="-C link-arg=-zstack-size=65536 -C link-arg=--initial-memory=2097152" \
    nice cargo build --release --target wasm32-wasip1 \
    --manifest-path "$ROOT/tests/fixtures/rust/Cargo.toml" --target-dir "$TARGET/guest-fixtures"
fi
for f in "$WWS" "$NATIVE" "$GUESTS/hello.wasm" "$GUESTS/hello_raw.wasm"; do
  [[ -e $f ]] || { echo "bench: $f is missing; run without --no-build" >&2; exit 1; }
done

REPO=$BENCH_TARGET/runtime-repo
REPO_OK=0
step "runtime repository for python and ruby ($REPO)"
if nice "$ROOT/runtimes/build-repository.sh" "$REPO" >"$LOGS/runtime-repo.log" 2>&1; then
  REPO_OK=1
else
  echo "  runtimes/build-repository.sh failed; python and ruby will be skipped (see $LOGS/runtime-repo.log)" >&2
fi

# ------------------------------------------------------------------------------------ projects

# project_KEY DIR: fills DIR with a hello project, or sets WHY and returns 1.
project_rust_sdk() { cp "$GUESTS/hello.wasm" "$1/index.wasm"; }
project_rust_raw() { cp "$GUESTS/hello_raw.wasm" "$1/index.wasm"; }
project_static() { mkdir -p "$1/public" && echo "Hello from a static file" >"$1/public/index.html"; }
project_js() {
  echo 'addEventListener("fetch", e => e.respondWith(new Response("Hello from js")));' >"$1/index.js"
}
project_js_reuse() { # opt-in: live instances serve many requests
  project_js "$1" && printf '[runtime]\nreuse = true\n' >"$1/index.toml"
}
install_runtime() { # DIR NAME
  if ((!REPO_OK)); then WHY="the runtime repository could not be built (runtimes/build-repository.sh)"; return 1; fi
  if ! (cd "$1" && "$WWS" runtimes install "$2" latest --repo-url "file://$REPO/index.toml") >>"$LOGS/install-$2.log" 2>&1; then
    WHY="\`wws runtimes install $2 latest\` failed: $(tail -n 1 "$LOGS/install-$2.log")"
    return 1
  fi
}
project_python() {
  install_runtime "$1" python || return 1
  printf 'def worker(req):\n    return Response("Hello from python")\n' >"$1/index.py"
}
project_python_fresh() { # the original's way: a fresh interpreter per request
  project_python "$1" || return 1
  printf '[runtime]\nreuse = false\n' >"$1/index.toml"
}
project_ruby() {
  install_runtime "$1" ruby || return 1
  printf 'def worker(req)\n  Response.new("Hello from ruby")\nend\n' >"$1/index.rb"
}

# ------------------------------------------------------------------------------------ scenarios

S_KEY=() S_LABEL=() S_CONNS=() S_EXPECT=()
scenario() { S_KEY+=("$1") S_LABEL+=("$2") S_CONNS+=("$3") S_EXPECT+=("$4"); }

#        project      label                      connections  body contains
scenario rust_sdk     "wws rust hello (SDK)"     "32 1"       "Hello from wws"
scenario rust_raw     "wws rust hello (raw)"     "32 1"       "Hello from wws"
scenario js           "wws js hello"             "32 1"       "Hello from js"
scenario js_reuse     "wws js hello (reuse)"     "32 1"       "Hello from js"
scenario static       "wws static file"          "32"         "Hello from a static file"
scenario python       "python hello"             "8 1"        "Hello from python"
scenario python_fresh "python hello (no reuse)"  "1"          "Hello from python"
scenario ruby         "ruby hello"               "1"          "Hello from ruby"

# ------------------------------------------------------------------------------------ main

step "starting servers"
start_server native "$NATIVE_READY" "$NATIVE" || { echo "bench: the native baseline did not start" >&2; exit 1; }
NATIVE_PID=$SERVER_PID NATIVE_URL=$SERVER_URL
"${TOOLS[@]}" check "$NATIVE_URL/" "Hello from native"
warm_up "$NATIVE_URL" 32
echo "  native hello: $NATIVE_URL (pid $NATIVE_PID)" >&2

S_URL=() S_PID=() S_OK=()
for i in "${!S_KEY[@]}"; do
  key=${S_KEY[$i]} label=${S_LABEL[$i]} dir=$WORK/projects/${S_KEY[$i]} WHY=''
  S_OK[i]=0
  mkdir -p "$dir"
  if ! "project_$key" "$dir"; then note main "$label" "skipped: $WHY"; continue; fi
  if ! start_server "$key" "$WWS_READY" "$WWS" "$dir" --port 0; then
    note main "$label" "skipped: wws did not start on this project ($(tail -n 1 "$LOGS/$key.log"))"
    continue
  fi
  S_PID[i]=$SERVER_PID S_URL[i]=$SERVER_URL
  if ! err=$("${TOOLS[@]}" check "$SERVER_URL/" "${S_EXPECT[$i]}" 2>&1); then
    stop_server "$SERVER_PID"
    note main "$label" "skipped: ${err#bench: }"
    continue
  fi
  max=0
  for c in ${S_CONNS[$i]}; do ((c > max)) && max=$c; done
  warm_up "$SERVER_URL" "$max"
  S_OK[i]=1
  echo "  $label: $SERVER_URL (pid $SERVER_PID)" >&2
done

# One batch per connection count: native and every scenario measured at that count, RUNS times
# in turn, so slow drift of the machine hits all rows of a batch alike.
CONNS=$(printf '%s\n' ${S_CONNS[@]} | sort -n -r -u)
for c in $CONNS; do
  members=()
  for i in "${!S_KEY[@]}"; do
    ((S_OK[i])) && [[ " ${S_CONNS[$i]} " == *" $c "* ]] && members+=("$i")
  done
  ((${#members[@]})) || continue
  step "batch -c$c: native + ${#members[@]} scenario(s), $RUNS x ${DURATION}s each"
  for round in $(seq "$RUNS"); do
    run_wrk main "c$c" "native hello" "$c" "$NATIVE_URL" "$NATIVE_PID" "$round"
    for i in "${members[@]}"; do
      run_wrk main "c$c" "${S_LABEL[$i]}" "$c" "${S_URL[$i]}" "${S_PID[$i]}" "$round"
    done
  done
done
for i in "${!S_KEY[@]}"; do ((S_OK[i])) && stop_server "${S_PID[$i]}"; done
JS_OK=0
for i in "${!S_KEY[@]}"; do [[ ${S_KEY[$i]} == js ]] && JS_OK=${S_OK[$i]}; done

# ------------------------------------------------------------------------------------ startup

step "startup: 50 workers, cold then warm .wws/cache"
SP=$WORK/projects/startup
mkdir -p "$SP"
for n in $(seq 0 24); do "${TOOLS[@]}" wasm-variant "$GUESTS/hello.wasm" "$SP/w$n.wasm" "$n"; done
if ((JS_OK)); then
  for n in $(seq 0 24); do
    echo "addEventListener(\"fetch\", e => e.respondWith(new Response(\"Hello from js $n\")));" >"$SP/j$n.js"
  done
  workers="25 .wasm (distinct hashes) + 25 .js"
else
  for n in $(seq 25 49); do "${TOOLS[@]}" wasm-variant "$GUESTS/hello.wasm" "$SP/w$n.wasm" "$n"; done
  workers="50 .wasm (distinct hashes)"
  note startup "startup project" "50 .wasm workers and no .js: wws does not serve the js hello yet"
fi
"${TOOLS[@]}" startup --wws "$WWS" --project "$SP" --route /w0 --expected "Hello from wws" \
  --results "$RESULTS" --log "$LOGS/startup.log" --workers "$workers" --warm-runs "$WARM_STARTS" ||
  note startup "startup" "failed (see the log)"

# ------------------------------------------------------------------------------------ CPU limit

step "CPU-time limit: on (--timeout-ms 30000, the default) vs off (--timeout-ms 0)"
# Off, the engine compiles no epoch checks and runs no ticker thread: the difference is the
# whole cost of the limit. Without the limit wws serves on the work-stealing runtime (guests
# would not yield on a per-core thread), so both servers run there: the row compares the limit
# alone, not the two ways of serving.
OFF_ARGS=(--timeout-ms 0) OFF_LABEL="wws --timeout-ms 0 (off)"
cp -r "$WORK/projects/rust_sdk" "$WORK/projects/cpu"
if start_server cpu-default "$WWS_READY" env WWS_PER_CORE=0 "$WWS" "$WORK/projects/cpu" --port 0 --timeout-ms 30000; then
  A_PID=$SERVER_PID A_URL=$SERVER_URL
  if start_server cpu-off "$WWS_READY" env WWS_PER_CORE=0 "$WWS" "$WORK/projects/cpu" --port 0 "${OFF_ARGS[@]}"; then
    B_PID=$SERVER_PID B_URL=$SERVER_URL
    warm_up "$A_URL" 32
    warm_up "$B_URL" 32
    # Two servers only: the order flips every round (on, off, off, on, ...), since whichever
    # runs first after a pause was measured a few percent apart from the other.
    for round in $(seq "$CPU_RUNS"); do
      on=(cpu cpu "wws --timeout-ms 30000 (default)" 32 "$A_URL" "$A_PID" "$round")
      off=(cpu cpu "$OFF_LABEL" 32 "$B_URL" "$B_PID" "$round")
      if ((round % 2)); then run_wrk "${on[@]}"; run_wrk "${off[@]}"; else run_wrk "${off[@]}"; run_wrk "${on[@]}"; fi
    done
    stop_server "$B_PID"
  else
    note cpu "CPU-time limit" "wws did not start with ${OFF_ARGS[*]}"
  fi
  stop_server "$A_PID"
else
  note cpu "CPU-time limit" "wws did not start with --timeout-ms 30000"
fi

# ------------------------------------------------------------------------------------ engine settings

step "engine and serving settings: each against the default, on the raw Rust hello and the JS hello"
# The overrides of crates/worker/src/tuning.rs and crates/server/src/cores.rs; the default is
# what wws ships.
SETTINGS=("default|" "copy, no CoW image|WWS_ENGINE_COW=0" "no PAGEMAP_SCAN reset|WWS_ENGINE_PAGEMAP=0"
  "nothing kept resident|WWS_ENGINE_KEEP_RESIDENT=0" "work-stealing runtime, not per core|WWS_PER_CORE=0"
  "no batched sends|WWS_BATCH_SENDS=0")
# start_variants NAME PROJECT LABEL SETTING...: one warmed-up server per "label|VAR=value"
# setting, each on its own copy of PROJECT; fills V_PID, V_URL and V_LABEL ("LABEL: label"),
# and notes a setting whose server does not start.
start_variants() {
  local name=$1 project=$2 prefix=$3 i=0 setting label var dir
  shift 3
  V_PID=() V_URL=() V_LABEL=()
  for setting in "$@"; do
    label=${setting%%|*} var=${setting#*|}
    dir=$WORK/projects/$name-$i
    rm -rf "$dir" && cp -r "$project" "$dir"
    if start_server "$name-$i" "$WWS_READY" env ${var:+"$var"} "$WWS" "$dir" --port 0; then
      warm_up "$SERVER_URL" 32
      V_PID+=("$SERVER_PID") V_URL+=("$SERVER_URL") V_LABEL+=("$prefix: $label")
    else
      note engine "$prefix: $label" "wws did not start with ${var:-no override}"
    fi
    i=$((i + 1))
  done
}

for s in "${!S_KEY[@]}"; do
  key=${S_KEY[$s]} name=${S_LABEL[$s]}
  [[ $key == rust_raw || $key == js ]] && ((S_OK[s])) || continue
  start_variants "engine-$key" "$WORK/projects/$key" "$name" "${SETTINGS[@]}"
  for round in $(seq "$RUNS"); do
    for i in "${!V_PID[@]}"; do
      run_wrk engine "engine-$key" "${V_LABEL[$i]}" 32 "${V_URL[$i]}" "${V_PID[$i]}" "$round"
    done
  done
  for pid in "${V_PID[@]}"; do stop_server "$pid"; done
done

# ------------------------------------------------------------------------------------ heavy neighbour

step "a heavy neighbour: the SDK hello at -c32 while one more connection asks for 50 ms of CPU at a time"
# Per core, a connection stays on its thread, and a run that yields moves to the work-stealing
# runtime (crates/worker/src/offload.rs). These rows show what a long request still costs the
# short ones beside it, per core and on the work-stealing runtime (WWS_PER_CORE=0).
NEIGHBOUR=$WORK/projects/neighbour
mkdir -p "$NEIGHBOUR" && cp "$GUESTS/hello.wasm" "$NEIGHBOUR/index.wasm" && cp "$GUESTS/sleep.wasm" "$NEIGHBOUR/slow.wasm"
start_variants neighbour "$NEIGHBOUR" "hello beside 50 ms requests" "default|" "work-stealing runtime, not per core|WWS_PER_CORE=0"
for round in $(seq "$RUNS"); do
  for i in "${!V_PID[@]}"; do
    wrk -t1 -c1 -d"$((DURATION + 2))s" --timeout 10s "${V_URL[$i]}/slow?ms=50" >/dev/null 2>&1 &
    heavy=$!
    run_wrk engine neighbour "${V_LABEL[$i]}" 32 "${V_URL[$i]}" "${V_PID[$i]}" "$round"
    kill "$heavy" 2>/dev/null || true
    wait "$heavy" 2>/dev/null || true
  done
done
for pid in "${V_PID[@]}"; do stop_server "$pid"; done

# ------------------------------------------------------------------------------------ RSS growth

step "RSS growth: after 1k requests, warm after $RSS_WARM under load, and $RSS_TARGET more"
# Concurrent load warms one pool slot per request in flight (each keeps its memory resident
# for the next request), so RSS steps up once when the load starts: a leak is growth after
# that, between the reading at RSS_WARM and the last one, under the same load.
cp -r "$WORK/projects/rust_sdk" "$WORK/projects/rss"
if start_server rss "$WWS_READY" "$WWS" "$WORK/projects/rss" --port 0; then
  P=$SERVER_PID U=$SERVER_URL
  "${TOOLS[@]}" rss-point --results "$RESULTS" --pid "$P" --point "ready, no request yet" --requests 0
  "${TOOLS[@]}" requests "$U/" 1000
  "${TOOLS[@]}" rss-point --results "$RESULTS" --pid "$P" --point "after 1k requests, one at a time" --requests 1000
  served=1000 started=$SECONDS
  load_slice() { # one slice of wrk at -c32; adds what it served to $served
    wrk -t2 -c32 -d"${SLICE}s" --timeout 10s -s "$BENCH/lib/report.lua" "$U/" >"$WORK/wrk.out" 2>&1 || return 1
    n=$(sed -n 's/^BENCH-JSON .*"requests":\([0-9]*\).*/\1/p' "$WORK/wrk.out")
    served=$((served + ${n:-0}))
  }
  while ((served < RSS_WARM && SECONDS - started < RSS_CAP)); do load_slice || break; done
  "${TOOLS[@]}" rss-point --results "$RESULTS" --pid "$P" --point "warm: after load at 32 connections" --requests "$served"
  warm=$served
  while ((served - warm < RSS_TARGET && SECONDS - started < RSS_CAP)); do load_slice || break; done
  "${TOOLS[@]}" rss-point --results "$RESULTS" --pid "$P" --point "after $((RSS_TARGET / 1000))k more under the same load" --requests "$served"
  served=$((served - warm))
  ((served >= RSS_TARGET)) || note rss "RSS growth" "only $served requests after the warm reading in ${RSS_CAP}s (target $RSS_TARGET)"
  stop_server "$P"
else
  note rss "RSS growth" "wws did not start"
fi

# ------------------------------------------------------------------------------------ report

"${TOOLS[@]}" report "$RESULTS" >"$WORK/report.md"
MACHINE="$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), Linux $(uname -r)"
printf '\n## wws benchmark (%s)\n\nMachine: %s; %s.\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$MACHINE" "$WRK_VERSION"
cat "$WORK/report.md"
if ((RECORD)); then
  "${TOOLS[@]}" record --readme "$BENCH/README.md" --report "$WORK/report.md" \
    --command "bench/run.sh ${ARGS[*]}" --commit "$COMMIT" --wrk "$WRK_VERSION"
  echo "recorded in bench/README.md" >&2
fi
