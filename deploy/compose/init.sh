#!/bin/sh
# The compose file's one-shot `init` service (as root, once): makes the ledger with
# ledger-bootstrap, gives each node its config and node key, and leaves the agency keys and the
# clients' config in ./out on the host. Does nothing when the ledger is already made.
set -eu
out=/out
if [ ! -e "$out/genesis.toml" ]; then
  ledger-bootstrap "$out" pcl-compose cn44:CN-44:cn44 cn33:CN-33:cn33 de:DE:de
fi
cp "$out/genesis.toml" "$out/trust.txt" "$out/client.toml" "$out"/node-*.toml /etc/ledger/
for name in cn44 cn33 de; do
  if [ ! -e "/nodes/$name/node.key" ]; then
    install -m 0600 "$out/secrets/node-$name.key" "/nodes/$name/node.key"
  fi
  chown -R 10001:10001 "/nodes/$name"
  chmod 0700 "/nodes/$name"
done
# The host user reads the client config and the agency keys from ./out.
chmod -R a+rX "$out"
echo "ledger made: client config $out/client-published.toml, agency keys $out/secrets/"
