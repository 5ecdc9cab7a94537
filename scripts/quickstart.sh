#!/usr/bin/env bash
# Set up animerec in .venv, ingest the Kaggle "Anime Recommendations Database", train the
# default model and print recommendations for a sample user and for a new person.
#
# Usage: ./scripts/quickstart.sh DATA_DIR    (DATA_DIR holds anime.csv and rating.csv;
#                                             default: $ANIMEREC_DATA)
# State (the SQLite store and trained models) goes to $ANIMEREC_HOME, by default the
# platform's user data folder (~/.local/share/animerec on Linux).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh

data_dir="${1:-${ANIMEREC_DATA:-}}"
if [ -z "$data_dir" ]; then
    echo "usage: $0 DATA_DIR (the folder with anime.csv and rating.csv), or set ANIMEREC_DATA" >&2
    exit 2
fi
if [ ! -f "$data_dir/anime.csv" ] || [ ! -f "$data_dir/rating.csv" ]; then
    echo "error: $data_dir must contain anime.csv and rating.csv from the Kaggle" \
        "\"Anime Recommendations Database\"" >&2
    exit 1
fi

ensure_venv
echo "Installing animerec into $VENV_DIR" >&2
"$VENV_PYTHON" -m pip install --quiet --disable-pip-version-check -e .
animerec="$VENV_DIR/bin/animerec"

"$animerec" ingest kaggle-2016 "$data_dir"
echo
"$animerec" train als
echo

# The first user in rating.csv serves as the sample user.
sample_user="$(awk -F, 'NR == 2 { print $1; exit }' "$data_dir/rating.csv")"
"$animerec" recommend --user "$sample_user" -n 10
echo
"$animerec" recommend --liked "Cowboy Bebop" --liked "Steins;Gate" --liked "Gintama'" -n 10
