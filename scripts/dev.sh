#!/usr/bin/env bash
# `make dev`: the local edge on real workerd, with local Durable Objects
# (SQLite under .wrangler/state) and local Queues, on 127.0.0.1:${PORT:-8787}.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/tools.sh)"
port=${PORT:-8787}

if [ ! -f .dev.vars ]; then
  admin="adm_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  dispatch="whsec_$(head -c 24 /dev/urandom | base64 | tr -d '\n')"
  umask 077
  printf 'ADMIN_TOKEN=%s\nDISPATCH_SECRET=%s\n' "$admin" "$dispatch" > .dev.vars
  echo "edgehook: created .dev.vars with a random ADMIN_TOKEN and DISPATCH_SECRET" >&2
fi
admin=$(sed -n 's/^ADMIN_TOKEN=//p' .dev.vars | head -1)
dispatch=$(sed -n 's/^DISPATCH_SECRET=//p' .dev.vars | head -1)

bash scripts/build-worker.sh >&2

base="http://127.0.0.1:$port"
cat <<EOT

  edgehook is starting on $base

  ADMIN_TOKEN     $admin
  DISPATCH_SECRET $dispatch   (verify runs at your target with any Standard Webhooks library)

  Try it (copy and paste into another terminal):

    export EDGEHOOK=$base TOKEN=$admin SECRET=my-github-secret
    TRIGGER=\$(curl -s -X POST \$EDGEHOOK/api/triggers -H "Authorization: Bearer \$TOKEN" \\
      -d '{"name":"demo","provider":"github","signing_secret":"my-github-secret"}' \\
      | sed -E 's/.*"id":"([^"]+)".*/\1/')
    BODY='{"zen":"Keep it logically awesome."}'
    SIG=sha256=\$(printf '%s' "\$BODY" | openssl dgst -sha256 -hmac "\$SECRET" | sed 's/.* //')
    curl -s -X POST \$EDGEHOOK/hooks/\$TRIGGER -H "X-Hub-Signature-256: \$SIG" \\
      -H "X-GitHub-Event: push" -H "X-GitHub-Delivery: demo-1" -d "\$BODY" | tee /tmp/edgehook-demo.json; echo
    DELIVERY=\$(sed -E 's/.*"delivery_id":"([^"]+)".*/\1/' /tmp/edgehook-demo.json)
    curl -s \$EDGEHOOK/api/triggers/\$TRIGGER/deliveries/\$DELIVERY -H "Authorization: Bearer \$TOKEN"; echo

EOT
# The local runtime has no limit on a consumer's connections waiting for
# headers, where production has six: the consumer's send slots are lifted
# to match it (worker/src/consumer.rs, `DISPATCH_SEND_SLOTS`).
exec "$WRANGLER" dev --ip 127.0.0.1 --port "$port" --show-interactive-dev-session=false \
  --var DISPATCH_SEND_SLOTS:100
