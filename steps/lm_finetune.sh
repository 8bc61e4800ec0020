#!/usr/bin/env bash
# steps/lm_finetune.sh — large-margin fine-tuning: a few epochs from a trained model with longer crops and a
# larger margin at a low learning rate (WeSpeaker's "LM" stage), into a new exp dir.
set -euo pipefail

conf=                # override YAML (required): egs/<corpus>/conf/lmft.yaml
device=auto
nproc=1
nodes=1
ngpu=0
cmd=local
override=            # extra dotted overrides after --conf, e.g. "train.max_epochs=2"
init=best            # best: <src-exp>/best.pt; last: <src-exp>/ckpt.pt (the final weights)

help_message="Usage: $0 [options] <lists-dir> <src-exp> <dest-exp>
  Fine-tunes the model of <src-exp> into <dest-exp> (its own config.yaml, ckpt.pt, best.pt, train.log):
  the config is <src-exp>/config.yaml with the keys of --conf changed (e.g. train.crop_frames,
  loss.margin, train.lr, train.max_epochs) and train.init_from=<src-exp>/best.pt, which loads the model
  and classifier weights at step 0 only. Resumable exactly like stage 3 (steps/train.sh): a killed run
  re-run continues from <dest-exp>/ckpt.pt; a finished one says so. <lists-dir> must be the lists the
  source model was trained on (same speakers).
Options:
  --conf FILE        override YAML (required; egs/mini/conf/lmft.yaml, egs/voxceleb/conf/lmft.yaml)
  --override \"k=v ..\" extra dotted overrides applied after --conf (e.g. \"train.max_epochs=2\")
  --init best|last   start from <src-exp>/best.pt (default) or <src-exp>/ckpt.pt
  --device DEV --nproc N --ngpu N --nodes M --cmd local|slurm   as steps/train.sh
Example:
  $0 --conf egs/mini/conf/lmft.yaml data/mini_train/lists exp/mini_dmha exp/mini_dmha_lmft"

. "$(dirname "$0")/../path.sh"
. "$DMHA_ROOT/utils/parse_options.sh"
if [ $# -ne 3 ]; then printf '%s\n' "$help_message" >&2; exit 1; fi
lists=$1; src=$2; dest=$3
[ -n "$conf" ] || { echo "$0: --conf <lmft.yaml> is required (see --help)" >&2; exit 1; }
[ -f "$conf" ] || { echo "$0: --conf $conf: file not found" >&2; exit 1; }
[ -f "$src/config.yaml" ] || { echo "$0: $src/config.yaml not found: is $src a trained exp dir?" >&2; exit 1; }
case "$init" in
  best) weights=$src/best.pt ;;
  last) weights=$src/ckpt.pt ;;
  *) echo "$0: --init must be best or last, got '$init'" >&2; exit 1 ;;
esac
[ -f "$weights" ] || { echo "$0: $weights not found: train $src first (stage 3)" >&2; exit 1; }
[ "$(cd "$src" && pwd)" != "$(mkdir -p "$dest" && cd "$dest" && pwd)" ] || \
  { echo "$0: <dest-exp> must differ from <src-exp>" >&2; exit 1; }

"$DMHA_ROOT/steps/train.sh" --config "$src/config.yaml" --override-file "$conf" \
  --override "train.init_from=$weights${override:+ $override}" --device "$device" --nproc "$nproc" --ngpu "$ngpu" --nodes "$nodes" \
  --cmd "$cmd" "$lists" "$dest"
