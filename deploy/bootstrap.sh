#!/bin/sh
# Makes everything a new replicated ledger needs before its first start, for the compose file
# and the Kubernetes manifests (deploy/README.md):
#
#   OUT/genesis.toml, OUT/trust.txt, OUT/client.toml     public: every node and client gets them
#   OUT/client-published.toml                            client.toml for ports published on this
#                                                        machine: node i at 127.0.0.1:(7100 + i)
#   OUT/node-NAME.toml                                   one config per node
#   OUT/secrets/node-NAME.key                            each node's node key (its identity)
#   OUT/secrets/agency-J.key                             each jurisdiction's agency key
#
# Usage: bootstrap.sh OUT LEDGER NAME:JURISDICTION:HOST [NAME:JURISDICTION:HOST ...]
#   e.g. bootstrap.sh out pcl-demo cn44:CN-44:cn44 cn33:CN-33:cn33 de:DE:de
# Node i (from 1) gets Raft id i, serves the public API on HOST:7100 and Raft on HOST:7200.
# Needs ledger-node and ledger-client on PATH. Leaves an OUT that already holds a genesis as it
# is: keys are never replaced.
#
# A real deployment runs this step apart: each agency makes its own agency key and each
# operator its own node key (`ledger-node node-key`), and only the public halves are exchanged.
set -eu

[ $# -ge 3 ] || { sed -n '2,18p' "$0" >&2; exit 2; }
out=$1 ledger=$2
shift 2
if [ -e "$out/genesis.toml" ]; then
  echo "$out/genesis.toml exists: this ledger is already made; nothing changed" >&2
  exit 0
fi
mkdir -p "$out/secrets"
chmod 700 "$out/secrets"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

genesis="ledger = \"$ledger\"
"
members=""
trust="# Checkpoint keys of the ledger's nodes: JURISDICTION and verifier key, one node per line.
"
endpoints="" published="" keys="" id=0 seen=""
for node in "$@"; do
  id=$((id + 1))
  name=${node%%:*} rest=${node#*:}
  jurisdiction=${rest%%:*} host=${rest#*:}
  [ -n "$name" ] && [ -n "$jurisdiction" ] && [ -n "$host" ] && [ "$host" != "$rest" ] \
    || { echo "$node: expected NAME:JURISDICTION:HOST" >&2; exit 2; }
  case " $seen " in *" $jurisdiction "*) ;; *)
    seen="$seen $jurisdiction"
    agency=$(ledger-client keygen --out "$out/secrets/agency-$jurisdiction.key")
    genesis="$genesis
[[jurisdictions]]
code = \"$jurisdiction\"
agency_keys = [\"$agency\"]
" ;;
  esac
  printed=$(ledger-node node-key --data-dir "$tmp/$name" --node-id "$name")
  node_key=$(echo "$printed" | sed -n 's/^node_key=//p')
  verifier=$(echo "$printed" | sed -n 's/^verifier=//p')
  mv "$tmp/$name/node.key" "$out/secrets/node-$name.key"
  trust="$trust$jurisdiction $verifier
"
  members="$members
[[raft.members]]
id = $id
raft_address = \"https://$host:7200\"
public_address = \"https://$host:7100\"
node_key = \"$node_key\"
"
  endpoints="$endpoints${endpoints:+, }\"https://$host:7100\""
  published="$published${published:+, }\"https://127.0.0.1:$((7100 + id))\""
  keys="$keys${keys:+, }\"$node_key\""
done

printf '%s' "$genesis" > "$out/genesis.toml"
printf '%s' "$trust" > "$out/trust.txt"
printf 'endpoints = [%s]\n\n[tls]\nnode_keys = [%s]\n' "$endpoints" "$keys" > "$out/client.toml"
printf 'endpoints = [%s]\n\n[tls]\nnode_keys = [%s]\n' "$published" "$keys" \
  > "$out/client-published.toml"
id=0
for node in "$@"; do
  id=$((id + 1))
  name=${node%%:*} rest=${node#*:}
  jurisdiction=${rest%%:*} host=${rest#*:}
  cat > "$out/node-$name.toml" <<TOML
# Node $name of ledger $ledger (made by deploy/bootstrap.sh). LEDGER_* variables override
# these values (docs/cli.md). Its node key is DATA_DIR/node.key (secrets/node-$name.key).
node_id = "$name"
jurisdiction = "$jurisdiction"
listen = "0.0.0.0:7100"
data_dir = "/var/lib/ledger"
genesis = "genesis.toml"
trust = "trust.txt"

[tls]
names = ["$host"]

[raft]
id = $id
listen = "0.0.0.0:7200"
$members
TOML
done
echo "made ledger $ledger in $out: $id node(s); secret keys in $out/secrets" >&2
