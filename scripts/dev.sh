#!/usr/bin/env bash
# Starts the Auth0 emulator and a Vault dev server with the plugin registered (by sha256
# and version), mounted at auth0/ and configured against the emulator, with a demo role
# "myapp". Runs until Ctrl-C. Called by `make dev`, which builds the binaries first.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/bin
state=$root/.dev
version=${VERSION:?VERSION must be set (make dev sets it)}
vault_port=${VAULT_PORT:-8200}
emulator_port=${EMULATOR_PORT:-8091}
# Auth0 plan whose Management API rate limits the emulator applies (free, essentials,
# professional, enterprise); empty: unlimited. PROPAGATION_DELAY (e.g. 30s) makes a new
# secret take effect as slowly as Auth0 says it may.
plan=${AUTH0_PLAN:-free}
propagation=${PROPAGATION_DELAY:-0s}
export VAULT_ADDR=http://127.0.0.1:$vault_port VAULT_TOKEN=root
vault_bin=${VAULT_BIN:-$bin/vault}

random_secret() { head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 64; }

rm -rf "$state" && mkdir -p "$state"
mgmt_secret=$(random_secret)
cat > "$state/seed.json" <<JSON
{"clients":[
  {"client_id":"vault-mgmt","client_secret":"$mgmt_secret","name":"Vault (Management API)",
   "grants":{"management":["read:clients","read:client_keys","update:client_keys","update:clients",
     "create:client_credentials","read:client_credentials","update:client_credentials","delete:client_credentials"]}},
  {"client_id":"myapp-client-id","client_secret":"$(random_secret)","name":"My App",
   "grants":{"https://api.example.test/":[]}},
  {"client_id":"mykeyapp-client-id","client_secret":"$(random_secret)","name":"My Key App",
   "grants":{"https://api.example.test/":[]}}
]}
JSON

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$bin/auth0-emulator" -addr "127.0.0.1:$emulator_port" -seed "$state/seed.json" \
  ${plan:+-plan "$plan"} -propagation-delay "$propagation" >"$state/emulator.log" 2>&1 &
pids+=($!)
"$vault_bin" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$vault_port" \
  -dev-plugin-dir="$bin/plugins" >"$state/vault.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 50); do
  "$vault_bin" status >/dev/null 2>&1 && break
  sleep 0.2
done
"$vault_bin" status >/dev/null || { echo "Vault did not start; see $state/vault.log" >&2; exit 1; }

sha=$(sha256sum "$bin/plugins/vault-plugin-auth0" | cut -d' ' -f1)
"$vault_bin" plugin register -sha256="$sha" -version="$version" -command=vault-plugin-auth0 secret vault-plugin-auth0 >/dev/null
"$vault_bin" secrets enable -path=auth0 -plugin-version="$version" vault-plugin-auth0 >/dev/null
# propagation_wait matches the emulator's delay: a new private_key_jwt key is served once
# Auth0 (here, the emulator) applies it everywhere.
"$vault_bin" write auth0/config domain="http://127.0.0.1:$emulator_port" client_id=vault-mgmt client_secret="$mgmt_secret" \
  propagation_wait="$propagation" >/dev/null
"$vault_bin" write auth0/roles/myapp client_id=myapp-client-id >/dev/null
# A private_key_jwt role: its first rotation switches the application from its secret to
# a Vault-generated key (allow_auth_method_change), later ones overlap for overlap_period.
"$vault_bin" write auth0/roles/mykeyapp client_id=mykeyapp-client-id credential_type=private_key_jwt \
  allow_auth_method_change=true overlap_period=10m >/dev/null

cat <<MSG

Vault $VAULT_ADDR (root token "root") with vault-plugin-auth0 $version at auth0/,
talking to the Auth0 emulator at http://127.0.0.1:$emulator_port. Logs: $state/

In another shell:

  export PATH="$bin:\$PATH" VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=root
  vault write -f auth0/rotate/myapp
  vault read auth0/creds/myapp
  vault read auth0/versions/myapp
  vault path-help auth0/creds/myapp

  # the served secret works at the emulator's token endpoint, as an application would use it:
  curl -s http://127.0.0.1:$emulator_port/oauth/token -d grant_type=client_credentials \\
    -d client_id=myapp-client-id -d audience=https://api.example.test/ \\
    -d client_secret="\$(vault read -field=client_secret auth0/creds/myapp)"

Ctrl-C stops both servers.
MSG
wait -n "${pids[@]}"
