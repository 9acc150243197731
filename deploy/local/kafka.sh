#!/usr/bin/env bash
# One Apache Kafka 3.9 node (KRaft: broker and controller in one JVM) on 127.0.0.1:9092,
# run from Maven Central jars with the machine's Java: no container engine, no tarball.
#
#   deploy/local/kafka.sh start|stop|status|libs
#
# Everything lives under .state/kafka: libs/ (the classpath Maven copies), data/ (the
# log dirs), logs/, server.properties, cluster.id, kafka.pid. Idempotent: `start` on a
# running broker only checks it answers; delete .state/kafka/data to start empty.
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_STATE="$STATE/kafka"
LIBS="$KAFKA_STATE/libs"
DATA="$KAFKA_STATE/data"
LOGS="$KAFKA_STATE/logs"
PROPS="$KAFKA_STATE/server.properties"
LOG4J="$KAFKA_STATE/log4j.properties"
PIDFILE="$KAFKA_STATE/kafka.pid"
POM="$ROOT/deploy/local/kafka/pom.xml"

HOST=127.0.0.1
# Overridable to run a second, throw-away broker beside the usual one (measurements).
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
HEAP="${KAFKA_HEAP:-512m}"
# Bounds, so a broken network or broker is reported instead of waited on forever.
MVN_TIMEOUT_S="${KAFKA_MVN_TIMEOUT_S:-600}"
# Generous: after a crash the broker recovers every partition before it answers (112 s
# was seen with ~1,240 topics); wait_kafka.py gives up at once if the process dies.
READY_TIMEOUT_S="${KAFKA_READY_TIMEOUT_S:-240}"
STOP_TIMEOUT_S="${KAFKA_STOP_TIMEOUT_S:-30}"

mkdir -p "$KAFKA_STATE"

# --- the classpath ----------------------------------------------------------------------

require_java() {
  command -v java >/dev/null 2>&1 \
    || die "java not found: Kafka needs a JRE (11+). On Debian: apt-get install -y openjdk-17-jre-headless"
}

resolve_jars() {
  resolve_maven_jars kafka "$POM" "$LIBS" kafka.libs.dir 'kafka_2.13-*.jar' "$LOGS/maven.log" \
    "$MVN_TIMEOUT_S"
}

# --- configuration ------------------------------------------------------------------------

# Rewritten on every start so the file always matches this script.
write_config() {
  mkdir -p "$DATA" "$LOGS"
  cat >"$PROPS" <<PROPS
# Written by deploy/local/kafka.sh; edits are overwritten on the next start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
# One node: every internal topic has one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
default.replication.factor=1
min.insync.replicas=1
# Topics are created on purpose (revops topics ensure), never by a typo.
auto.create.topics.enable=false
# Consumers in tests join a group many times; the 3 s default delay would add up.
group.initial.rebalance.delay.ms=0
# After a crash (kill -9) every partition's last segment is recovered before the broker
# answers; both cores do it, not one (the fault check waited 112 s with one thread).
num.recovery.threads.per.data.dir=2
PROPS

  # Kafka's own config/log4j.properties, trimmed: server and controller logs, rolled by
  # size so a long-lived dev broker cannot fill the disk.
  cat >"$LOG4J" <<'LOG4J'
log4j.rootLogger=INFO, kafkaAppender

log4j.appender.kafkaAppender=org.apache.log4j.RollingFileAppender
log4j.appender.kafkaAppender.File=${kafka.logs.dir}/server.log
log4j.appender.kafkaAppender.MaxFileSize=20MB
log4j.appender.kafkaAppender.MaxBackupIndex=3
log4j.appender.kafkaAppender.layout=org.apache.log4j.PatternLayout
log4j.appender.kafkaAppender.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.appender.controllerAppender=org.apache.log4j.RollingFileAppender
log4j.appender.controllerAppender.File=${kafka.logs.dir}/controller.log
log4j.appender.controllerAppender.MaxFileSize=20MB
log4j.appender.controllerAppender.MaxBackupIndex=3
log4j.appender.controllerAppender.layout=org.apache.log4j.PatternLayout
log4j.appender.controllerAppender.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.controller=INFO, controllerAppender
log4j.additivity.kafka.controller=false
log4j.logger.org.apache.kafka.controller=INFO, controllerAppender
log4j.additivity.org.apache.kafka.controller=false
log4j.logger.state.change.logger=WARN, controllerAppender
log4j.additivity.state.change.logger=false
LOG4J
}

java_opts() { kafka_java_opts "$HEAP" "$LOGS" "$LOG4J"; }

format_storage() {
  kafka_format_storage kafka "$PROPS" "$DATA" "$KAFKA_STATE/cluster.id" "$LOGS/format.log"
}

# --- process ------------------------------------------------------------------------------

# The broker started with our properties.
our_pid() { owned_pid "$PIDFILE" "kafka.Kafka $PROPS"; }

check_ports_free() {
  local port owner
  for port in "$PORT" "$CONTROLLER_PORT"; do
    if port_open "$HOST" "$port"; then
      owner="$(port_owner "$port")"
      die "port $HOST:$port is taken by another process${owner:+ ($owner)}, not by our broker. Stop it, or stop the other Kafka, then rerun."
    fi
  done
}

wait_ready() {
  local pid="$1" rc=0
  command -v uv >/dev/null 2>&1 \
    || die "uv not found (the readiness check runs in the project's venv): run deploy/local/bootstrap.sh"
  uv_run python deploy/local/wait_kafka.py --bootstrap "$HOST:$PORT" \
    --timeout "$READY_TIMEOUT_S" --pid "$pid" || rc=$?
  if [ "$rc" -ne 0 ]; then
    say "--- last lines of $LOGS/server.log and kafka.out ---" >&2
    tail -n 25 "$LOGS/server.log" "$LOGS/kafka.out" >&2 2>/dev/null || true
    if [ "$rc" -eq 3 ]; then
      die "the Kafka broker exited while starting (see the logs above)"
    fi
    die "the Kafka broker (pid $pid) did not answer on $HOST:$PORT within ${READY_TIMEOUT_S}s"
  fi
}

start() {
  local pid
  if pid="$(our_pid)"; then
    say "kafka: already running (pid $pid)"
    wait_ready "$pid"
    return
  fi
  # A broker already answering here (another checkout's, a developer's own) is used as
  # it is, like an existing Postgres: tests and services only need a broker on the port.
  if port_open "$HOST" "$PORT" \
    && uv_run python deploy/local/wait_kafka.py --bootstrap "$HOST:$PORT" --timeout 5 >/dev/null 2>&1; then
    say "kafka: using the broker already answering on $HOST:$PORT (not started by this checkout)"
    return
  fi
  check_ports_free
  require_java
  resolve_jars
  write_config
  format_storage
  local -a opts
  mapfile -t opts < <(java_opts)
  # setsid: the broker gets its own session, so a Ctrl-C in the shell or the end of
  # `make` does not take it down; stdout/stderr only catch what log4j does not.
  setsid java "${opts[@]}" -cp "$LIBS/*" kafka.Kafka "$PROPS" \
    >>"$LOGS/kafka.out" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  say "kafka: started (pid $pid, heap $HEAP, logs in ${LOGS#"$ROOT"/}), waiting until it answers ..."
  wait_ready "$pid"
}

stop() {
  local pid
  if ! pid="$(our_pid)"; then
    say "kafka: not running"
    return
  fi
  # SIGTERM = controlled shutdown: the broker flushes and closes its logs cleanly.
  kill -TERM "$pid"
  wait_gone "$pid" kafka "$STOP_TIMEOUT_S"
  rm -f "$PIDFILE"
  say "kafka: stopped"
}

status() {
  local pid
  if pid="$(our_pid)" && port_open "$HOST" "$PORT"; then
    say "kafka: running (pid $pid) on $HOST:$PORT"
    return 0
  fi
  if pid="$(our_pid)"; then
    say "kafka: process $pid is up but $HOST:$PORT does not accept connections (starting?)"
  elif port_open "$HOST" "$PORT"; then
    say "kafka: not ours; something else listens on $HOST:$PORT"
  else
    say "kafka: not running"
  fi
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  # Only resolve the jars and print their folder (kafka-cluster.sh runs its brokers from it).
  libs)
    require_java
    resolve_jars >&2
    echo "$LIBS"
    ;;
  *)
    echo "usage: $0 start|stop|status|libs" >&2
    exit 2
    ;;
esac
