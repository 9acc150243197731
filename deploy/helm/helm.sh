#!/usr/bin/env bash
# Helm's lint and template for the chart, with the machine's Java and Maven and no helm
# binary: helm-java (Helm's engine as a native library) comes from Maven Central.
#
#   deploy/helm/helm.sh lint [CHART]
#   deploy/helm/helm.sh template CHART RELEASE NAMESPACE KUBE_VERSION [VALUES_FILE ...]
#   deploy/helm/helm.sh cases CHART KUBE_VERSION OUT_DIR NAME=VALUES[,VALUES] ...
#
# The jars land in .state/helm/libs on first use (about 30 MB, most of it the native
# library) and are reused after; a version bump in tool/pom.xml resolves them again.
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../local/lib.sh"

HELM_STATE="$STATE/helm"
LIBS="$HELM_STATE/libs"
POM="$ROOT/deploy/helm/tool/pom.xml"
TOOL="$ROOT/deploy/helm/tool/HelmTool.java"
MVN_TIMEOUT_S="${HELM_MVN_TIMEOUT_S:-600}"

# HelmTool.java runs as a single source file, so Java's compiler module must be there: a
# JDK, not only the JRE that Kafka needs. Installed when missing, like the rest of the
# project's tools (as root, or through sudo).
require_jdk() {
  if command -v java >/dev/null 2>&1 && java --list-modules 2>/dev/null | grep -q '^jdk.compiler@'; then
    return
  fi
  apt_install openjdk-17-jdk-headless
  java --list-modules 2>/dev/null | grep -q '^jdk.compiler@' \
    || die "java has no jdk.compiler module after installing openjdk-17-jdk-headless: is another java first on PATH?"
}

resolve_jars() {
  mkdir -p "$HELM_STATE"
  resolve_maven_jars helm "$POM" "$LIBS" helm.libs.dir 'helm-java-*.jar' \
    "$HELM_STATE/maven.log" "$MVN_TIMEOUT_S"
}

case "${1:-}" in
  lint)
    require_jdk
    resolve_jars
    exec java -cp "$LIBS/*" "$TOOL" lint "${2:-$ROOT/deploy/helm/revops}"
    ;;
  template | cases)
    require_jdk
    resolve_jars
    exec java -cp "$LIBS/*" "$TOOL" "$@"
    ;;
  *)
    echo "usage: $0 lint [CHART] | template CHART RELEASE NAMESPACE KUBE_VERSION [VALUES...] | cases CHART KUBE_VERSION OUT_DIR NAME=VALUES..." >&2
    exit 2
    ;;
esac
