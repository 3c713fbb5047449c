# Sourced by the CLI test scripts: `expect` and the pass / fail counters.
# expect NAME WANT_RC PATTERN -- CMD...: runs CMD, checks its exit code and that PATTERN appears
# in its combined output (grep basic regex; EXPECT_ERE=1 before sourcing: extended).
pass=0
fail=0
_expect_grep=(grep -q)
[[ "${EXPECT_ERE:-0}" == 1 ]] && _expect_grep=(grep -qE)
expect() {
  local name="$1" want_rc="$2" pattern="$3"
  shift 4
  local out rc
  out="$("$@" 2>&1)"
  rc=$?
  if [[ "$rc" == "$want_rc" ]] && "${_expect_grep[@]}" -- "$pattern" <<<"$out"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL $name: exit $rc (want $want_rc), output:"
    echo "$out" | tail -25
  fi
}
# finish LABEL: the summary line; the script's exit status.
finish() {
  echo "$1: $pass passed, $fail failed"
  [[ "$fail" == 0 ]]
}
