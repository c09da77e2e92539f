"""Drift statistics, regime normalisation, verdicts and the ``drift`` command, on hand-made and real data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.cli import main
from core.data import queries, store, writes
from core.data.cmapss import COLUMNS, SENSORS
from core.errors import UserError
from core.monitoring import drift, regimes, statistics, verdicts
from tests.conftest import cmapss_file, data_dir, missing_data


def _read(name: str) -> pd.DataFrame:
    path = cmapss_file(data_dir(), name)
    if not path.exists():
        missing_data(f"C-MAPSS file {path} is not available")
    return pd.read_csv(path, sep=r"\s+", header=None, names=COLUMNS)


@pytest.fixture(scope="module")
def train() -> dict[str, pd.DataFrame]:
    """The full training files of FD001, FD002 and FD003."""
    return {subset: _read(f"train_{subset}") for subset in ("FD001", "FD002", "FD003")}


# --- statistics against hand-computed values ------------------------------------------------


def test_identical_samples_show_no_drift() -> None:
    sample = np.random.default_rng(0).normal(size=500)
    for result in (statistics.psi(sample, sample), statistics.ks(sample, sample), statistics.wasserstein(sample, sample)):
        assert result.score == pytest.approx(0.0, abs=1e-12)
        assert not result.drifted


def test_psi_of_a_known_reweighting_matches_the_hand_computation() -> None:
    reference = np.arange(100)  # ten values in each decile bin
    current = np.concatenate([np.arange(100), np.arange(10)])  # the first bin doubled
    expected = (20 / 110 - 0.1) * math.log((20 / 110) / 0.1) + 9 * (10 / 110 - 0.1) * math.log((10 / 110) / 0.1)
    result = statistics.psi(reference, current, threshold=0.25)
    assert result.score == pytest.approx(expected)
    assert result.drifted is False
    expected_dict = {"method": "psi", "score": result.score, "drifted": False, "threshold": 0.25, "p_value": None}
    assert result.to_dict() == expected_dict


def test_psi_floors_empty_bins_at_epsilon() -> None:
    reference = np.arange(100)
    current = np.arange(50, 150)  # bins 1-5 empty, bins 6-9 at 10 %, the open top bin at 60 %
    eps = statistics.EPSILON
    expected = 5 * (eps - 0.1) * math.log(eps / 0.1) + (0.6 - 0.1) * math.log(0.6 / 0.1)
    result = statistics.psi(reference, current)
    assert math.isfinite(result.score)
    assert result.score == pytest.approx(expected)
    assert result.drifted


def test_psi_of_a_constant_reference_uses_below_equal_above_bins() -> None:
    reference = np.full(50, 5.0)
    assert statistics.psi(reference, np.full(20, 5.0)).score == 0.0
    ref_share, cur_share = statistics.psi_bin_shares(reference, np.array([4.0, 5.0, 6.0, 6.0]))
    assert ref_share.tolist() == [0.0, 1.0, 0.0]
    assert cur_share.tolist() == [0.25, 0.25, 0.5]
    half_moved = statistics.psi(reference, np.array([5.0, 6.0]))
    eps = statistics.EPSILON
    assert half_moved.score == pytest.approx((0.5 - 1) * math.log(0.5) + (0.5 - eps) * math.log(0.5 / eps))
    assert half_moved.drifted


def test_ks_statistic_of_a_known_shift() -> None:
    result = statistics.ks([1, 2, 3, 4], [3, 4, 5, 6], threshold=0.5)
    assert result.score == pytest.approx(0.5)  # at x = 2: 2/4 of the reference, none of the current
    assert result.drifted  # reaching the threshold counts
    assert 0.0 < result.p_value <= 1.0


def test_wasserstein_is_in_reference_standard_deviations() -> None:
    reference = np.array([0.0, 1.0, 2.0, 3.0])
    assert statistics.wasserstein(reference, reference + 1).score == pytest.approx(1 / reference.std())
    assert statistics.wasserstein(reference, reference + 1, normalise=False).score == pytest.approx(1.0)
    assert statistics.wasserstein(np.full(4, 2.0), np.full(4, 3.0)).score == pytest.approx(1.0)  # no scale: raw


def test_ks_and_wasserstein_equal_scipy_on_samples_with_ties() -> None:
    from scipy import stats

    rng = np.random.default_rng(5)
    reference = np.round(rng.normal(size=3000), 1)
    current = np.round(rng.normal(0.2, 1.1, size=2000), 1)
    expected = stats.ks_2samp(reference, current, method="asymp")
    result = statistics.ks(reference, current)
    assert (result.score, result.p_value) == (expected.statistic, expected.pvalue)
    distance = statistics.wasserstein(reference, current, normalise=False).score
    assert distance == pytest.approx(stats.wasserstein_distance(reference, current), rel=1e-12)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, float("inf")], ["a", "b"]])
def test_bad_samples_are_refused_with_a_sentence(bad: list) -> None:
    with pytest.raises(UserError):
        statistics.psi([1.0, 2.0, 3.0], bad)


def test_prediction_drift_is_psi_of_predicted_rul() -> None:
    reference = np.linspace(0, 125, 200)
    assert statistics.prediction_drift(reference, reference).score == pytest.approx(0.0)
    assert statistics.prediction_drift(reference, reference * 0.3).drifted


# --- levels, thresholds and verdicts --------------------------------------------------------


def test_levels_exactly_at_the_thresholds() -> None:
    assert statistics.level(0.0999, 0.1, 0.25) == "none"
    assert statistics.level(0.1, 0.1, 0.25) == "warn"
    assert statistics.level(0.2499, 0.1, 0.25) == "warn"
    assert statistics.level(0.25, 0.1, 0.25) == "alert"


def test_verdict_exactly_at_the_thresholds() -> None:
    limits = statistics.Thresholds()
    assert verdicts.verdict(0.0, "none", None, limits).level == "none"
    assert verdicts.verdict(0.0, "warn", None, limits).level == "warn"
    assert verdicts.verdict(0.3, "alert", None, limits).level == "alert"  # a share of exactly 0.3 is not above it
    above = verdicts.verdict(0.3 + 1e-9, "alert", None, limits)
    assert above.level == "retrain" and above.retrain_recommended
    assert verdicts.verdict(0.0, "none", 0.1, limits).level == "warn"
    at_alert = verdicts.verdict(0.0, "none", 0.25, limits)  # prediction PSI exactly 0.25 is not above it
    assert at_alert.level == "alert" and not at_alert.retrain_recommended
    assert verdicts.verdict(0.0, "none", 0.2501, limits).level == "retrain"
    assert all(isinstance(sentence, str) and sentence for sentence in above.explanation)


def test_thresholds_are_configurable_and_checked() -> None:
    limits = statistics.Thresholds(share=0.5).with_levels("psi", warn=0.2, alert=0.4)
    assert limits.levels("psi") == (0.2, 0.4)
    assert verdicts.verdict(0.45, "alert", None, limits).level == "alert"
    with pytest.raises(UserError):
        statistics.Thresholds(psi_warn=0.3, psi_alert=0.2)
    with pytest.raises(UserError):
        statistics.Thresholds(share=1.5)
    with pytest.raises(UserError):
        statistics.Thresholds().levels("chi2")


def test_live_error_rmse_and_f2() -> None:
    error = drift.live_error([10, 50, 200], [20, 40, 125])  # truth capped at 125 for the RMSE
    assert error.rmse == pytest.approx(math.sqrt(200 / 3))
    assert error.f2 == pytest.approx(1.0)  # the one engine within 30 cycles was called
    missed = drift.live_error([10, 50, 200], [20, 40, 125], p_fail=[0.2, 0.6, 0.1])
    assert missed.f2 == pytest.approx(0.0)
    assert drift.live_error([100, 120], [90, 110]).f2 is None  # no failure, none called: undefined
    with pytest.raises(UserError):
        drift.live_error([1, 2], [1])


# --- frames, regimes and the real data ------------------------------------------------------


def test_operating_conditions_are_counted(train: dict[str, pd.DataFrame]) -> None:
    assert regimes.count_operating_conditions(train["FD001"]) == 1
    assert regimes.count_operating_conditions(train["FD002"]) == 6
    assert regimes.count_operating_conditions(train["FD003"]) == 1


def test_compare_frames_table_of_identical_frames(train: dict[str, pd.DataFrame]) -> None:
    frame = train["FD001"]
    table = drift.compare_frames(frame, frame)
    assert table.columns.tolist() == list(drift.TABLE_COLUMNS)
    assert table["feature"].tolist() == SENSORS
    assert not table["drifted"].any() and set(table["level"]) == {"none"}
    constant = table.set_index("feature").loc["sensor_1"]  # 518.67 in every FD001 row
    assert not constant["informative"] and constant["psi"] == 0.0
    assert drift.drift_share(table) == 0.0


def test_missing_feature_is_a_user_error(train: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(UserError, match="sensor_99"):
        drift.compare_frames(train["FD001"], train["FD003"], features=["sensor_99"])


@pytest.fixture(scope="module")
def fd001_vs_fd002(train: dict[str, pd.DataFrame]) -> verdicts.DriftReport:
    """train_FD002 assessed against train_FD001 (raw view decides)."""
    return verdicts.assess(train["FD001"], train["FD002"], prediction_psi_reason="no model")


def test_fd002_drifts_from_fd001_far_more_than_fd003(
    train: dict[str, pd.DataFrame], fd001_vs_fd002: verdicts.DriftReport
) -> None:
    share_fd002 = drift.drift_share(fd001_vs_fd002.features)
    share_fd003 = drift.drift_share(drift.compare_frames(train["FD001"], train["FD003"]))
    assert share_fd002 > 0.3
    assert share_fd003 < share_fd002 - 0.25


def test_regime_normalisation_removes_the_operating_condition_drift(
    train: dict[str, pd.DataFrame], fd001_vs_fd002: verdicts.DriftReport
) -> None:
    assert fd001_vs_fd002.normalised_drift_share < fd001_vs_fd002.raw_drift_share - 0.5
    summary = fd001_vs_fd002.regimes
    assert (summary.reference_conditions, summary.current_conditions, summary.unseen_conditions) == (1, 6, 5)
    _, _, reverse = regimes.normalise_by_regime(train["FD002"], train["FD001"], SENSORS)
    assert reverse.unseen_conditions == 0 and reverse.unseen_rows == 0


def test_normalised_view_of_one_regime_is_the_raw_view(train: dict[str, pd.DataFrame]) -> None:
    frame = train["FD001"].iloc[:3000]
    features = ["sensor_2", "sensor_7"]
    raw = drift.compare_frames(frame.iloc[:1500], frame.iloc[1500:], features=features)
    normalised = drift.compare_frames(frame.iloc[:1500], frame.iloc[1500:], features=features, normalise=True)
    pd.testing.assert_series_equal(raw["ks"], normalised["ks"])  # a per-regime z-score is monotone


def test_assess_explains_conditions_and_recommends_retraining(fd001_vs_fd002: verdicts.DriftReport) -> None:
    report = fd001_vs_fd002
    assert report.verdict.level == "retrain"
    text = " ".join(report.verdict.explanation)
    assert "6 operating conditions" in text and "vs 1 in the reference" in text
    assert "After regime normalisation" in text
    assert "Prediction drift was not measured: no model." in text
    json.dumps(report.to_dict())


# --- the command, through the store ---------------------------------------------------------


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store in a temporary home holding 10 engines of train_FD001 and 20 of train_FD002."""
    monkeypatch.setenv("PM_HOME", str(tmp_path))
    monkeypatch.delenv("PM_DUCKDB", raising=False)
    fd001, fd002 = _read("train_FD001"), _read("train_FD002")
    with store.connect() as con:
        writes.create_dataset(con, "train_FD001", "FD001", "history", "test", fd001[fd001["unit"] <= 10])
        writes.create_dataset(con, "train_FD002", "FD002", "history", "test", fd002[fd002["unit"] <= 20])


def test_drift_command_reports_features_share_and_verdict(fleet: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drift", "--reference", "train_FD001", "--current", "train_FD002", "--json"]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert [row["feature"] for row in raw["features"]] == SENSORS
    assert raw["drift_share"] > 0.3 and raw["verdict"]["level"] == "retrain"
    assert raw["prediction_psi"] is None and raw["prediction_psi_reason"] == "no model"
    assert raw["thresholds"]["psi_warn"] == 0.1 and raw["thresholds"]["share"] == 0.3

    pair = ["drift", "--reference", "train_FD001", "--current", "train_FD002"]
    assert main([*pair, "--normalised", "--alert", "0.5", "--json"]) == 0
    normalised = json.loads(capsys.readouterr().out)
    assert normalised["normalised"] and normalised["thresholds"]["psi_alert"] == 0.5
    assert normalised["drift_share"] < raw["drift_share"]

    assert main(["drift", "--reference", "train_FD001", "--current", "train_FD002"]) == 0
    text = capsys.readouterr().out
    assert "drift_share:" in text and "verdict: retrain" in text and "prediction_psi: n/a (no model)" in text


def test_drift_command_refuses_unknown_dataset_and_bad_thresholds(
    fleet: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["drift", "--reference", "train_FD001", "--current", "nope"]) == 1
    assert "No dataset named 'nope' is loaded." in capsys.readouterr().err
    pair = ["drift", "--reference", "train_FD001", "--current", "train_FD002"]
    assert main([*pair, "--warn", "0.5", "--alert", "0.1"]) == 1
    assert "warn <= alert" in capsys.readouterr().err


# --- reading one side of a comparison: whole, or a seeded sample of whole engines -----------

BOTH = ["train_FD001", "train_FD002"]


def test_a_side_within_the_limit_is_read_whole(fleet: None) -> None:
    with store.connect(read_only=True) as con:
        frame, sample = drift.read_side(con, BOTH)
        whole = queries.readings_many(con, BOTH)
    pd.testing.assert_frame_equal(frame, whole)
    assert not sample.sampled and (sample.engines, sample.readings) == (30, len(whole))
    assert sample.describe() == f"all 30 engines ({len(whole):,} readings)"


def test_a_larger_side_is_the_same_seeded_sample_of_whole_engines_on_every_read(fleet: None) -> None:
    with store.connect(read_only=True) as con:
        whole = queries.readings_many(con, BOTH)
        frame, sample = drift.read_side(con, BOTH, max_rows=2000)
        again, _ = drift.read_side(con, BOTH, max_rows=2000)
    pd.testing.assert_frame_equal(frame, again)
    assert sample.sampled and len(frame) == sample.readings <= 2000 and sample.total_readings == len(whole)
    keys = ["dataset", "unit"]
    pd.testing.assert_frame_equal(frame, whole.merge(frame[keys].drop_duplicates(), on=keys))  # engines complete
    assert sample.engines == frame.groupby(keys).ngroups < 30
    assert sample.describe() == f"{sample.engines} of 30 engines ({len(frame):,} of {len(whole):,} readings)"


def test_the_drift_page_says_how_much_of_each_side_it_compared(fleet: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(drift, "MAX_SIDE_ROWS", 3000)  # train_FD001 here: 2,136 readings; train_FD002: 3,905
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    at.run()  # through app.py (navigation), then to the page
    at.switch_page("pages/drift.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (note,) = [c.value for c in at.caption if c.value.startswith("Compared:")]
    assert note.startswith("Compared: reference all 10 engines (2,136 readings), current ")
    assert " of 20 engines (" in note and "of 3,905 readings)" in note
    assert "seeded sample of whole engines" in note and "computed on the sample" in note
    assert at.selectbox(key="drift_current").value == "train_FD002"


# --- against a model's training data: the one verdict of the page, the CLI and the drift alert ---------------


def _reader(train: dict[str, pd.DataFrame]):
    def read(names: tuple[str, ...]) -> pd.DataFrame:
        return pd.concat([train[n.removeprefix("train_")].assign(dataset=n) for n in names], ignore_index=True)
    return read


def test_a_mixed_training_set_is_judged_against_its_nearest_part(train: dict[str, pd.DataFrame]) -> None:
    training = ("train_FD001", "train_FD003")
    current = train["FD003"][train["FD003"]["unit"] <= 30].assign(dataset="fleet")
    near = verdicts.against_training(training, current, _reader(train), matched=True)
    assert near.reference == ("train_FD003",) and near.nearest_part
    assert set(near.shares) == {("train_FD001",), ("train_FD003",)}, "the pooled data is tried only when all drift"
    assert near.shares[("train_FD003",)] == near.report.drift_share <= 0.3
    assert not near.report.verdict.retrain_recommended
    assert near.report.prediction_psi is None and near.report.prediction_psi_reason == verdicts.NO_MODEL_REASON

    far = verdicts.against_training(training, train["FD002"].assign(dataset="fleet"), _reader(train), matched=True)
    assert set(far.shares) == {("train_FD001",), ("train_FD003",), training}
    assert far.report.verdict.retrain_recommended and far.report.drift_share > 0.3


def test_the_prediction_psi_compares_the_model_on_the_same_engines_the_page_samples(
        train: dict[str, pd.DataFrame]) -> None:
    seen: list[tuple[str, tuple[str, ...], int]] = []

    def predict(side: str, names: tuple[str, ...], rows: pd.DataFrame) -> np.ndarray:
        seen.append((side, names, len(rows)))
        return rows["sensor_11"].to_numpy()  # a stand-in "model": any per-row number will do

    current = train["FD002"].assign(dataset="fleet")
    result = verdicts.against_training(("train_FD001",), current, _reader(train), predict, matched=False)
    assert [(side, names) for side, names, _ in seen] == [("reference", ("train_FD001",)), ("current", ())]
    assert all(rows <= 12_000 for _, _, rows in seen), "a seeded sample of whole engines per side"
    assert result.report.prediction_psi == pytest.approx(
        statistics.prediction_drift(result.reference_rul, result.current_rul).score)
    assert result.report.prediction_psi_reason is None


def test_drift_command_without_a_reference_needs_a_model(fleet: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drift", "--current", "train_FD002"]) == 1
    assert "No model is trained yet, so there is no training data to compare with" in capsys.readouterr().err
