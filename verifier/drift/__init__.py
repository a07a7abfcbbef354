"""Numerical drift: does a provider compute the reference's distribution on golden tokens?

Everything statistical about drift lives in this package, takes plain values (golden turns,
teacher-forced `PositionScore`s, per-position `TurnDrift`s) and imports no check, provider or runner:

- `statistics`   per-position statistics (truncated KL, relative log-odds error, confident top-1
                 flips; what a top-k host reports, `truncate`; the chosen-token-only error at top-1),
                 `TurnDrift` and how positions pool into turns and runs; the exact
                 Poisson-binomial test of the sampling fallback.
- `sequential`   THE DRIFT DECISION: `SequentialTest` (running median of the relative log-odds error
                 against the calibrated boundary, confident flips, early pass). The runner's early
                 stop (`Runner.teacher_forcing`, `Runner.greedy_logprobs`), the checks
                 (`verifier.checks.drift`) and calibration's detection power all use this one object;
                 `decide` runs it over a list. `DriftSummary`/`DriftLimits` are what checks record.
- `align`        greedy chat `top_logprobs` aligned with golden positions (no teacher forcing), and
                 the one other drift rule: a greedy path that leaves golden where golden is decisive
                 (margin >= the flip margin, and golden's token its own teacher-forced top-1) is
                 drift at once (the runner stops, the check fails, both on `greedy_positions`'
                 answer); aligned by id
                 where the host gives ids, by text otherwise, control tokens printed as "" included,
                 reasoning logprobs reported apart aligned to their own channel.
- `calibration`  `calibration.json`: the boundary fitted on honest engines' drift (`calibrate`), also
                 for hosts that cap their top lists (`Calibration.by_k`, top-5 and top-1, `for_k`),
                 detection power against faulty engines (`detection`), out-of-sample false
                 positives (`held_out_false_positives`), and the saved honest data.
- `provider_tokens` drift from the provider's own output, scored by the reference on the provider's own
                 prefix (no log-probabilities needed): decisive departures of greedy tokens (wider than
                 twice the most honest engines' own greedy answers were, `Calibration.greedy_answers`)
                 and the rank z-test of sampled tokens; `verifier.rescore`
                 gathers the scores after a run (`gpt-oss-verify score`).

Who feeds it: `verifier.calibrate` (the `golden calibrate` workflow, which builds scorers from
reference engines and endpoints), `verifier.runner` (scores golden turns until the test decides),
`verifier.checks.drift` (turns exchanges into verdicts) and `benchmarks/detection.py`.
"""
