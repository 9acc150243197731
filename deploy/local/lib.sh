# Helpers shared by the deploy/local scripts. Sourced, not run.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck disable=SC2034  # used by the scripts that source this file
STATE="${REVOPS_STATE_DIR:-$ROOT/.state}"
# The Debian clusters that exist right after this project installed the postgresql
# package (the package makes one): deploy/local/postgres.sh may configure those.
PACKAGE_CLUSTERS="$STATE/postgres-package-clusters"

say() { printf '%s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# True when something accepts TCP connections on host:port. bash's /dev/tcp needs no
# extra package (a fresh Debian image has neither ss nor nc); `timeout` keeps a
# firewalled port from hanging us.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# Best-effort description of who listens on a port, for error messages.
port_owner() {
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n 1
  fi
}

# Run as root, or through sudo when we are not root (a developer's laptop).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root for: $* (run as root or install sudo)"
  fi
}

# apt-get install only what is missing; update the index once, and only if needed.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand"
  say "installing $* (apt-get) ..."
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    || die "apt-get update failed: is the Debian mirror reachable?"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
    >/dev/null || die "apt-get install $* failed"
}

# `uv run` without touching uv.lock: several people edit pyproject files at once.
uv_run() { (cd "$ROOT" && uv run --frozen "$@"); }

# Record the clusters the postgresql package just made (see PACKAGE_CLUSTERS).
note_package_clusters() {
  mkdir -p "$STATE"
  if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | awk '{ print $1, $2 }' >>"$PACKAGE_CLUSTERS"
  fi
}

# The pid in PIDFILE while it is still our process: its command line holds MARK (pids get
# reused). A stale file is removed. Prints the pid.
owned_pid() {
  local pidfile="$1" mark="$2" pid
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  if [ -n "$pid" ] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF "$mark"; then
    echo "$pid"
    return 0
  fi
  rm -f "$pidfile"
  return 1
}

# Wait until PID has ended (it was sent SIGTERM), SIGKILL it after TIMEOUT seconds.
wait_gone() {
  local pid="$1" name="$2" timeout_s="$3" waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge "$timeout_s" ]; then
      warn "$name (pid $pid) still running after ${timeout_s}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      return
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

# Copy a Maven project's dependencies from Maven Central into LIBS, once per version of
# its pom: a stamp holds the pom's hash, and a new hash resolves into a clean LIBS (old
# jars beside new ones would put two versions on the classpath). KAFKA_MAVEN_REPO, when
# set, is the local repository (CI keeps its own cache).
#   resolve_maven_jars NAME POM LIBS LIBS_PROPERTY JAR_GLOB LOG TIMEOUT_S
resolve_maven_jars() {
  local name="$1" pom="$2" libs="$3" property="$4" glob="$5" log="$6" timeout_s="$7"
  local stamp="$libs/.resolved" hash
  hash="$(sha256sum "$pom" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then
    return
  fi
  command -v mvn >/dev/null 2>&1 || apt_install maven
  # On stderr: helm.sh's stdout is the rendered chart.
  say "$name: resolving its jars from Maven Central (first run only) ..." >&2
  rm -rf "$libs"
  mkdir -p "$(dirname "$log")"
  # -B: no progress bars in logs.
  local -a mvn_args=(-B -f "$pom" "-D$property=$libs" dependency:copy-dependencies)
  if [ -n "${KAFKA_MAVEN_REPO:-}" ]; then
    mvn_args=(-Dmaven.repo.local="$KAFKA_MAVEN_REPO" "${mvn_args[@]}")
  fi
  if ! timeout "$timeout_s" mvn "${mvn_args[@]}" >"$log" 2>&1; then
    rm -rf "$libs"
    if ! timeout 10 bash -c 'exec 3<>/dev/tcp/repo.maven.apache.org/443' 2>/dev/null; then
      die "Maven Central (repo.maven.apache.org:443) is unreachable, so $name's jars cannot be fetched. Check the network or proxy (~/.m2/settings.xml), then rerun. Maven's log: $log"
    fi
    tail -n 20 "$log" >&2
    die "mvn could not resolve $name's jars (timeout ${timeout_s}s or a Maven error above); full log: $log"
  fi
  compgen -G "$libs/$glob" >/dev/null || die "mvn ran but $libs has no $glob"
  echo "$hash" >"$stamp"
  say "$name: $(find "$libs" -name '*.jar' | wc -l) jars in $libs" >&2
}

# --- a Kafka node (kafka.sh, kafka-cluster.sh), from the jars in $LIBS ----------------------

# Java flags of kafka-run-class.sh (G1, short pauses), with our small heap.
#   kafka_java_opts HEAP LOG_DIR LOG4J_FILE
kafka_java_opts() {
  printf '%s\n' "-Xmx$1" "-Xms$1" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true "-Dkafka.logs.dir=$2" "-Dlog4j.configuration=file:$3"
}

# Format a node's log dirs once (nothing when DATA_DIR is formatted already); the cluster
# id is kept in ID_FILE, so a reformat is never silent and every node of a cluster shares it.
#   kafka_format_storage NAME PROPS DATA_DIR ID_FILE LOG
kafka_format_storage() {
  local name="$1" props="$2" data="$3" id_file="$4" log="$5" cluster_id
  [ -f "$data/meta.properties" ] && return
  if [ ! -s "$id_file" ]; then
    # Tool output may carry log4j noise on other lines; the id is the last line.
    java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 >"$id_file"
  fi
  cluster_id="$(cat "$id_file")"
  [[ "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "bad cluster id '$cluster_id' in $id_file"
  # On stderr: kafka-cluster.sh reads a node's pid from its launcher's stdout.
  say "$name: formatting $data (cluster $cluster_id)" >&2
  # With static controller.quorum.voters, 3.9 formats without --standalone.
  java -cp "$LIBS/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$props" \
    --ignore-formatted >"$log" 2>&1 || {
    cat "$log" >&2
    die "kafka storage format of $name failed"
  }
}
