#!/bin/sh
# The README's pictures, from real runs of rnninspect on the bundled sample models.
# Run from the repository root: sh docs/images/make.sh (needs: pip install -e '.[plot]')
set -e
rnninspect plot sample_models/seed/model.keras --random 1 --seed 0 --kind states -o docs/images/states.png
rnninspect plot sample_models/lstm/model.keras --random 1 --seed 0 --kind gates -o docs/images/gates.png
rnninspect plot sample_models/bidi_concat/model.keras --random 4 --seed 0 --kind units --layer bidirectional/forward --units 0,1,2 -o docs/images/units.png
rnninspect plot sample_models/bidi_concat/model.keras --random 8 --seed 0 --kind diagnose -o docs/images/diagnose.png
