# shellcheck shell=bash
# Shared helpers of scripts/setup, scripts/test and scripts/run: repo paths, the Kafka
# jar cache (version read from scripts/kafka/pom.xml) and the PostgreSQL bindir. The
# launcher (services/launch/src/install.rs) looks in the same places for what it starts.
# Source it; it defines functions and LD_ROOT only and runs nothing.

LD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LD_KAFKA_POM="$LD_ROOT/scripts/kafka/pom.xml"

ld_die() { echo "${LD_PROG:-linkdrop}: error: $*" >&2; exit 1; }

ld_cache_dir() { echo "${LINKDROP_CACHE_DIR:-$HOME/.cache/linkdrop}"; }

# The one place the Kafka version lives is the pom's <kafka.version> property.
ld_kafka_version() {
  local v
  v="$(sed -n 's:.*<kafka\.version>[[:space:]]*\([^<[:space:]]*\)[[:space:]]*</kafka\.version>.*:\1:p' "$LD_KAFKA_POM" | head -n 1)"
  [[ -n "$v" ]] || ld_die "no <kafka.version> in $LD_KAFKA_POM"
  echo "$v"
}

# The Python venv holding the test tools: the Standard Webhooks reference library, what
# schemas/check.py needs to check the contract (jsonschema, pyyaml, openapi-spec-validator),
# and schemathesis, which fuzzes the HTTP API from the OpenAPI (scripts/fuzz-api). Pinned;
# scripts/setup installs them.
LD_STANDARDWEBHOOKS_VERSION=1.1.0
LD_JSONSCHEMA_VERSION=4.26.0
LD_PYYAML_VERSION=6.0.3
LD_OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0
LD_KUBERNETES_VALIDATE_VERSION=1.37.0
LD_SCHEMATHESIS_VERSION=4.32.5
ld_test_venv() { echo "$(ld_cache_dir)/venv"; }
# The pinned requirements of the test venv, one `name==version` a line.
ld_test_venv_requirements() {
  printf '%s\n' \
    "standardwebhooks==$LD_STANDARDWEBHOOKS_VERSION" \
    "jsonschema==$LD_JSONSCHEMA_VERSION" \
    "pyyaml==$LD_PYYAML_VERSION" \
    "openapi-spec-validator==$LD_OPENAPI_SPEC_VALIDATOR_VERSION" \
    "kubernetes-validate==$LD_KUBERNETES_VALIDATE_VERSION" \
    "schemathesis==$LD_SCHEMATHESIS_VERSION"
}
# Go tools of the deployment checks, and where they go.
# v5.8.3 needs Go 1.27; v5.8.1 builds with the Go 1.26 installed here.
LD_KUSTOMIZE_MODULE=sigs.k8s.io/kustomize/kustomize/v5@v5.8.1
LD_COMPOSE_GO_MODULE=github.com/compose-spec/compose-go/v2@v2.16.2
ld_go_tools() { echo "$(ld_cache_dir)/go-tools"; }

ld_kafka_home() { echo "$(ld_cache_dir)/kafka-$(ld_kafka_version)"; }
ld_kafka_lib() { echo "$(ld_kafka_home)/lib"; }

# The marker holds the pom's checksum: a changed pom means a new download.
ld_kafka_pom_sum() { sha256sum "$LD_KAFKA_POM" | cut -d' ' -f1; }
ld_kafka_ready() {
  local marker
  marker="$(ld_kafka_home)/.complete"
  [[ -f "$marker" && -d "$(ld_kafka_lib)" ]] && [[ "$(cat "$marker")" == "$(ld_kafka_pom_sum)" ]]
}

# Newest /usr/lib/postgresql/<ver>/bin that has initdb; empty if none.
ld_pg_bindir() {
  local d best=""
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/initdb" ]] || continue
    best="$(printf '%s\n%s\n' "$best" "$d" | sed '/^$/d' | sort -V | tail -n 1)"
  done
  echo "$best"
}
