#!/bin/sh
# Makes everything a new replicated ledger needs before its first start, for the compose file
# and the Kubernetes manifests (deploy/README.md), by running the genesis ceremony
# (`ledger-node ceremony`) for every agency on this one machine:
#
#   OUT/genesis.toml, OUT/trust.txt, OUT/client.toml     public: every node and client gets them
#   OUT/client-published.toml                            client.toml for ports published on this
#                                                        machine: node i at 127.0.0.1:(7100 + i)
#   OUT/node-NAME.toml                                   one config per node
#   OUT/public/agency-J.toml                             each agency's public file
#   OUT/secrets/node-NAME.key                            each node's node key (its identity)
#   OUT/secrets/agency-J.key                             each jurisdiction's agency key
#
# Usage: bootstrap.sh OUT LEDGER NAME:JURISDICTION:HOST [NAME:JURISDICTION:HOST ...]
#   e.g. bootstrap.sh out pcl-demo cn44:CN-44:cn44 cn33:CN-33:cn33 de:DE:de
# Node i (from 1) gets Raft id i, serves the public API on HOST:7100 and Raft on HOST:7200.
# Needs ledger-node on PATH. Leaves an OUT that already holds a genesis as it is: keys are never
# replaced.
#
# A real federation runs the same steps apart (deploy/README.md, "The genesis ceremony"): each
# agency runs `ceremony agency` on its own machine and sends only its public file, one
# coordinator runs `ceremony assemble`, and every agency compares the genesis hash.
set -eu

[ $# -ge 3 ] || { sed -n '2,22p' "$0" >&2; exit 2; }
out=$1 ledger=$2
shift 2
if [ -e "$out/genesis.toml" ]; then
  echo "$out/genesis.toml exists: this ledger is already made; nothing changed" >&2
  exit 0
fi
mkdir -p "$out/secrets" "$out/public"
chmod 700 "$out/secrets"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

publics="" published="" id=0
for node in "$@"; do
  id=$((id + 1))
  name=${node%%:*} rest=${node#*:}
  jurisdiction=${rest%%:*} host=${rest#*:}
  if [ -z "$name" ] || [ -z "$jurisdiction" ] || [ -z "$host" ] || [ "$host" = "$rest" ]; then
    echo "$node: expected NAME:JURISDICTION:HOST" >&2
    exit 2
  fi
  # An agency with several nodes runs `ceremony agency` once per node in the same directory.
  ledger-node ceremony agency --jurisdiction "$jurisdiction" --node-id "$name" \
    --public-address "https://$host:7100" --raft-address "https://$host:7200" \
    --out "$tmp/$jurisdiction" > /dev/null
  mv "$tmp/$jurisdiction/$name/data/node.key" "$out/secrets/node-$name.key"
  case " $publics " in *" $tmp/$jurisdiction/public.toml "*) ;; *)
    publics="$publics $tmp/$jurisdiction/public.toml" ;;
  esac
  published="$published${published:+, }\"https://127.0.0.1:$((7100 + id))\""
done

for public in $publics; do
  jurisdiction=$(basename "$(dirname "$public")")
  cp "$public" "$out/public/agency-$jurisdiction.toml"
  mv "$(dirname "$public")/agency.key" "$out/secrets/agency-$jurisdiction.key"
done
# shellcheck disable=SC2086 # one argument per public file
hash=$(ledger-node ceremony assemble --ledger "$ledger" --out "$out/genesis.toml" $publics)
ledger-node ceremony client-config --genesis "$out/genesis.toml" --out "$out/client.toml" 2> /dev/null
{
  printf 'endpoints = [%s]\n\n' "$published"
  sed -n '/^\[tls\]/,$p' "$out/client.toml"
} > "$out/client-published.toml"
for node in "$@"; do
  name=${node%%:*}
  ledger-node ceremony node-config --genesis "$out/genesis.toml" --node-id "$name" \
    --data-dir /var/lib/ledger --out "$out/node-$name.toml" 2> /dev/null
done
echo "made ledger $ledger in $out: $id node(s), $hash; secret keys in $out/secrets" >&2
