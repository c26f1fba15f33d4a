#!/usr/bin/env bash
# Logs in as a private_key_jwt application, the way one does without an SDK: signs a
# client assertion (RS256 JWT: iss = sub = client_id, aud = https://<domain>/, a unique
# jti, exp one minute ahead) with openssl and exchanges it at <domain>/oauth/token.
# Usage: assertion.sh CLIENT_ID PRIVATE_KEY_PEM KID DOMAIN [AUDIENCE]
# DOMAIN is host[:port]; the token request goes to http:// for 127.0.0.1/localhost.
set -euo pipefail
client_id=$1 key=$2 kid=$3 domain=$4 audience=${5:-https://api.example.test/}
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
header=$(printf '{"alg":"RS256","typ":"JWT","kid":"%s"}' "$kid" | b64url)
claims=$(printf '{"iss":"%s","sub":"%s","aud":"https://%s/","iat":%d,"exp":%d,"jti":"%s"}' \
  "$client_id" "$client_id" "$domain" "$now" "$((now + 60))" "$(openssl rand -hex 16)" | b64url)
signature=$(printf '%s.%s' "$header" "$claims" | openssl dgst -sha256 -sign "$key" -binary | b64url)
scheme=https
case $domain in 127.0.0.1*|localhost*) scheme=http ;; esac
curl -sS "$scheme://$domain/oauth/token" -d grant_type=client_credentials -d client_id="$client_id" \
  -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
  -d client_assertion="$header.$claims.$signature" -d audience="$audience"
echo
