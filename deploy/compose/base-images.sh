#!/usr/bin/env bash
# Builds, without any image registry, the three third-party images docker-compose.yml
# uses, from Debian's packages and the Maven jars the project already resolves:
#   revops-python:3.11      Debian bookworm's Python 3.11 with pip (PYTHON_IMAGE, the
#                           services' base instead of python:3.11-slim)
#   revops-kafka:3.9.2      Kafka 3.9.2 from Maven Central on Debian's OpenJDK 17, reading
#                           the KAFKA_* environment as apache/kafka:3.9.2 does (KAFKA_IMAGE)
#   revops-postgres:15      Debian's PostgreSQL 15 with postgres:15's POSTGRES_* variables
#                           and /docker-entrypoint-initdb.d (POSTGRES_IMAGE)
# Each is a `debootstrap --variant=minbase` root imported into the engine, then finished
# by the Dockerfile beside this script (deploy/compose/images/<name>/).
#
#   deploy/compose/base-images.sh [--ca-bundle FILE] [--force]
#
# --ca-bundle FILE (or EXTRA_CA_BUNDLE=FILE): PEM certificates every image trusts besides
# Debian's, for machines behind a TLS-inspecting proxy (pip in the service builds must
# reach PyPI through it). An image is rebuilt only when its recipe (these files, the
# Kafka pom, the CA bundle) changed; --force rebuilds all three. Debian's packages are
# kept in .state/images/debs, so a rebuild downloads nothing twice.
# Needs root (debootstrap), a Docker-API engine (deploy/compose/engine.sh up) and the
# docker CLI. Prints the three variables to put in .env.
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../local/lib.sh"

HERE="$ROOT/deploy/compose"
WORK="$STATE/images"
DEBS="$WORK/debs"
SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
POM="$ROOT/deploy/local/kafka/pom.xml"
PYTHON_IMAGE=revops-python:3.11
KAFKA_IMAGE=revops-kafka:3.9.2
POSTGRES_IMAGE=revops-postgres:15

ca_bundle="${EXTRA_CA_BUNDLE:-}"
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --ca-bundle)
      ca_bundle="${2:?--ca-bundle needs a file}"
      shift 2
      ;;
    --force)
      force=1
      shift
      ;;
    *) die "usage: $0 [--ca-bundle FILE] [--force]" ;;
  esac
done
[ -z "$ca_bundle" ] || [ -s "$ca_bundle" ] || die "CA bundle $ca_bundle is missing or empty"

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root: run as root (or sudo)"
command -v docker >/dev/null 2>&1 || die "the docker CLI is missing: apt-get install -y docker.io (only the client is used)"
# The engine engine.sh found or started, unless DOCKER_HOST names one.
if [ -z "${DOCKER_HOST:-}" ] && engine="$("$HERE/engine.sh" env 2>/dev/null)"; then
  eval "$engine"
fi
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
  || die "no container engine answers at ${DOCKER_HOST:-the default socket}: run deploy/compose/engine.sh up"
command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap

# What an image is made of: when none of it changed, the image is kept.
recipe() {
  local name="$1"
  {
    cat "$HERE/base-images.sh"
    find "$HERE/images/$name" -type f -print0 | sort -z | xargs -0 cat
    [ "$name" != kafka ] || cat "$POM"
    [ -z "$ca_bundle" ] || cat "$ca_bundle"
  } | sha256sum | cut -d' ' -f1
}

up_to_date() {
  local image="$1" hash="$2"
  [ "$force" -eq 0 ] \
    && [ "$(docker image inspect -f '{{index .Config.Labels "revops.recipe"}}' "$image" 2>/dev/null)" = "$hash" ]
}

# A minimal Debian root with the given packages, trusting the extra CA bundle.
make_root() {
  local root="$1" packages="$2"
  rm -rf "$root"
  mkdir -p "$DEBS"
  say "images: debootstrap $SUITE ($packages) ..."
  debootstrap --variant=minbase --cache-dir="$DEBS" --include="ca-certificates,$packages" \
    "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 || {
    tail -n 20 "$root.log" >&2
    die "debootstrap failed (log: $root.log): is Debian's mirror reachable?"
  }
  if [ -n "$ca_bundle" ]; then
    # One certificate a file, as update-ca-certificates expects.
    awk -v dir="$root/usr/local/share/ca-certificates" '
      /-----BEGIN CERTIFICATE-----/ { n++; file = sprintf("%s/revops-extra-%03d.crt", dir, n) }
      n { print > file }
      /-----END CERTIFICATE-----/ { close(file) }' "$ca_bundle"
    # /proc: Java's trust store hook (ca-certificates-java) runs java, which needs it.
    mount -t proc proc "$root/proc"
    chroot "$root" update-ca-certificates >"$root.ca.log" 2>&1 || {
      umount "$root/proc"
      cat "$root.ca.log" >&2
      die "update-ca-certificates failed in the $root image"
    }
    umount "$root/proc"
    rm -f "$root.ca.log"
  fi
  rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/archives/"*.deb
}

# Imports the root as <image>-root, then builds <image> from images/<name>/Dockerfile
# with the given context folder.
finish_image() {
  local name="$1" image="$2" hash="$3" root="$4" context="$5"
  say "images: importing $image ..."
  tar -C "$root" -c . | docker import - "$image-root" >/dev/null
  docker build -q -f "$HERE/images/$name/Dockerfile" --build-arg "ROOT_IMAGE=$image-root" \
    --label "revops.recipe=$hash" -t "$image" "$context" >"$root.build.log" 2>&1 || {
    cat "$root.build.log" >&2
    die "docker build of $image failed"
  }
  rm -f "$root.build.log"
  docker rmi "$image-root" >/dev/null 2>&1 || true
  rm -rf "$root" "$root.log"
  say "images: $image built"
}

build_python() {
  local hash root="$WORK/python"
  hash="$(recipe python)"
  if up_to_date "$PYTHON_IMAGE" "$hash"; then
    say "images: $PYTHON_IMAGE is up to date"
    return
  fi
  make_root "$root" python3.11,python3-pip
  finish_image python "$PYTHON_IMAGE" "$hash" "$root" "$HERE/images/python"
}

build_kafka() {
  local hash root="$WORK/kafka" context="$WORK/kafka-context"
  hash="$(recipe kafka)"
  if up_to_date "$KAFKA_IMAGE" "$hash"; then
    say "images: $KAFKA_IMAGE is up to date"
    return
  fi
  command -v mvn >/dev/null 2>&1 || apt_install maven
  rm -rf "$context"
  cp -r "$HERE/images/kafka" "$context"
  say "images: resolving Kafka's jars from Maven Central (cached in ~/.m2) ..."
  local -a mvn_args=(-B -q -f "$POM" -Dkafka.libs.dir="$context/libs" dependency:copy-dependencies)
  if [ -n "${KAFKA_MAVEN_REPO:-}" ]; then
    mvn_args=(-Dmaven.repo.local="$KAFKA_MAVEN_REPO" "${mvn_args[@]}")
  fi
  mvn "${mvn_args[@]}" >"$WORK/kafka-maven.log" 2>&1 || {
    tail -n 20 "$WORK/kafka-maven.log" >&2
    die "mvn could not resolve Kafka's jars (log: $WORK/kafka-maven.log)"
  }
  make_root "$root" openjdk-17-jre-headless
  finish_image kafka "$KAFKA_IMAGE" "$hash" "$root" "$context"
  rm -rf "$context"
}

build_postgres() {
  local hash root="$WORK/postgres"
  hash="$(recipe postgres)"
  if up_to_date "$POSTGRES_IMAGE" "$hash"; then
    say "images: $POSTGRES_IMAGE is up to date"
    return
  fi
  make_root "$root" postgresql-15
  # Debian's package made a cluster of its own; the image's entrypoint makes its own.
  rm -rf "$root/var/lib/postgresql/15" "$root/etc/postgresql/15"
  finish_image postgres "$POSTGRES_IMAGE" "$hash" "$root" "$HERE/images/postgres"
}

mkdir -p "$WORK"
build_python
build_kafka
build_postgres
say "images: ready; to use them, put these lines in .env:"
say "PYTHON_IMAGE=$PYTHON_IMAGE"
say "KAFKA_IMAGE=$KAFKA_IMAGE"
say "POSTGRES_IMAGE=$POSTGRES_IMAGE"
