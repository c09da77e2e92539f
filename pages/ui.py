"""Shared UI pieces for the pages: session defaults, cached resources, sidebar status.

The model stack (torch and XGBoost, through ``core.serving``) is imported where it is used and
warmed up in a background thread a few seconds after the first session starts (:func:`init_session`), so the
first page draws at once.
"""

from __future__ import annotations

import importlib
import re
import threading
import time
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from core import config
from core.data import names, queries, store
from core.errors import UserError
from core.operations import job_progress, jobs, registry

if TYPE_CHECKING:
    from models.ensemble import Ensemble
    from models.explain import Explainer

HEAVY_MODULES = ("mlflow", "core.serving.whatif", "core.serving.fleet", "models.bundle")
"""Imported in the background at start: they take seconds (torch above all) and no first page needs them."""
MARKDOWN_CHARS = frozenset("\\`*_{}[]()<>#+-.!|~$:@&=")
"""Characters that Markdown, GitHub's extensions or Streamlit's (colour, emoji, LaTeX) may read as syntax: :func:`text`
writes each as a numeric character reference."""
WORD_JOINER = "\u2060"
_BARE_LINK = re.compile(r"(?<=:)(?=//)|(?<=www)(?=\.)|(?<=@)", re.IGNORECASE)
"""Where :func:`text` puts a word joiner so that GitHub's bare-link detection finds no ``scheme://``, ``www.`` or
e-mail address."""
WARM_UP_DELAY_S = 3.0
"""Seconds the background imports wait, so they do not slow the first page's drawing (a page that needs a
module sooner imports it itself)."""

SESSION_DEFAULTS: dict[str, object] = {
    "fleet_datasets": None,
    "engine": None,
    "cost_miss": 50_000,
    "cost_inspection": 2_000,
}


def init_session() -> None:
    """Create the fleet store if needed and put the session defaults every page relies on in place.

    A store that cannot be prepared (a read-only home, a file another process holds) is said in one
    sentence; the pages still draw, and those that only read work on a read-only store.
    """
    try:
        _store_ready(str(config.paths().duckdb))
    except UserError as err:
        show_error(err)
    _warm_up()
    for key, value in SESSION_DEFAULTS.items():
        st.session_state.setdefault(key, value)


@st.cache_resource(show_spinner=False)
def _store_ready(path: str) -> bool:
    """Create the DuckDB file and its schema once per path where it may be written, so read-only opens find
    it; whether the store is writable."""
    return store.prepare()


@st.cache_resource(show_spinner=False)
def _warm_up() -> threading.Thread:
    """Start importing :data:`HEAVY_MODULES` in a daemon thread after :data:`WARM_UP_DELAY_S`, once per server
    process."""
    def load() -> None:
        time.sleep(WARM_UP_DELAY_S)
        for name in HEAVY_MODULES:
            importlib.import_module(name)

    thread = threading.Thread(target=load, name="warm-up-imports", daemon=True)
    thread.start()
    return thread


@st.cache_resource(show_spinner=False)
def _registry_ready(uri: str) -> str:
    """Initialise MLflow's database once per tracking URI in this server process."""
    registry.init()
    return uri


def champion_version() -> int | None:
    """The champion's registry version, read on every rerun so a promotion is picked up at once."""
    _registry_ready(config.paths().mlflow_uri)
    return registry.champion_version()


def load_model(version: int, uri: str) -> Ensemble:
    """The ensemble of a registry version, loaded once per bundle (run id and content hash, not version number)."""
    return _load_bundle(registry.bundle_key(version), version, uri)


@st.cache_resource(show_spinner="Loading model…", max_entries=4)
def _load_bundle(key: str, version: int, uri: str) -> Ensemble:
    """The ensemble of the bundle `key` (registered as `version` in the registry at `uri`), loaded once."""
    from models.bundle import load_bundle

    return load_bundle(registry.bundle_dir(version))


def serving_model() -> tuple[int, Ensemble] | None:
    """(version, ensemble) of the champion, or None when no model is trained yet."""
    version = champion_version()
    if version is None:
        return None
    return version, load_model(version, config.paths().mlflow_uri)


def datasets() -> pd.DataFrame:
    """The loaded datasets (read fresh each rerun; the query is cheap)."""
    with store.connect(read_only=True) as con:
        return queries.list_datasets(con)


def engine_count() -> int:
    """Engines in the store, each once (a closed engine is not counted again in its history copy)."""
    with store.connect(read_only=True) as con:
        return queries.engine_count(con)


def text(value: object) -> str:
    """`value` (a name, note, query-string value, file name, or a sentence quoting them) as Markdown source that
    Streamlit shows literally, for every call that reads Markdown: ``st.markdown``, ``st.caption``,
    ``st.info/warning/error/success``, ``st.toast``, ``st.progress`` texts, metric, tab, expander, button and
    other widget labels, and ``help=`` texts.

    Each of :data:`MARKDOWN_CHARS` is written as a numeric character reference (``*`` as ``&#42;``), which
    Markdown shows as the character and never reads as emphasis, a link, a list, a table, HTML, ``$`` LaTeX,
    ``:red[...]`` colour or an ``:emoji:``/``:material/...:`` shortcode. Control and format characters are shown as
    Python escapes (``\\x1b``), as the command line shows them (:func:`core.data.names.escape`). GitHub's bare-link
    detection reads the shown text, so an invisible word joiner (U+2060) goes after a ``:`` before ``//``, inside
    ``www.`` and after ``@``: ``http://...``, ``www.example.com`` and ``a@b.org`` stay text. Only for Markdown:
    ``st.text``, ``st.code``, dataframe cells and selectbox or multiselect options show a string as it is.
    """
    shown = _BARE_LINK.sub(WORD_JOINER, names.escape(str(value)))
    return "".join(f"&#{ord(char)};" if char in MARKDOWN_CHARS else char for char in shown)


def show_error(err: Exception) -> None:
    """Show a failure as one sentence (never a traceback), literally: core's sentences quote names and paths."""
    st.error(text(err), icon=":material/error:")


def no_model_notice() -> None:
    """Explain that no model exists yet and link to where one is trained."""
    st.info("No model is trained yet. Train one on the Models page (or run `python -m core train`).")
    st.page_link("pages/models.py", label="Go to Models and retrain", icon=":material/model_training:")


def sidebar_status() -> None:
    """What is loaded, which model serves, and any running training job."""
    with st.sidebar:
        try:
            listing = datasets()
            engines = engine_count()
        except UserError as err:
            show_error(err)
            return
        st.caption("Fleet data")
        if listing.empty:
            st.write("No data loaded yet.")
        else:
            st.write(f"{len(listing)} datasets · {engines:,} engines")
        st.caption("Serving model")
        if registry.opening():
            registry_opening()
            return
        try:
            version = champion_version()
        except UserError as err:
            show_error(err)
            return
        st.write(f"`rul-ensemble` v{version} (champion)" if version is not None else "None yet")
        if jobs.running() is not None:
            training_progress()


@st.fragment(run_every="1s")
def registry_opening() -> None:
    """Said while the server opens the model registry after its start; the app reruns once it is open."""
    if not registry.opening():
        st.rerun(scope="app")
    st.write("Opening the model registry…")


@st.fragment(run_every="2s")
def training_progress() -> None:
    """The running training's overall progress and ETA (as on the Models page), refreshed every 2 s.

    Declared only while a training runs; when it ends, the app reruns once and the timer is gone.
    """
    job = jobs.running()
    if job is None:
        st.rerun(scope="app")
    st.caption("Simulation training (sandbox)" if job.kind == "sim-train" else "Training")
    overall = job_progress.overall(job)
    st.progress(overall.fraction, text=f"job {job.id}: {overall.text()}")


def data_fingerprint(names: list[str] | tuple[str, ...]) -> tuple:
    """(name, rows, sha256, last load, closed engines) of each named dataset: cached results keyed by it
    refresh when readings arrive or an outcome closes an engine."""
    listing = datasets().set_index("name")
    return tuple(
        (name, int(listing.at[name, "rows"]), str(listing.at[name, "sha256"]), str(listing.at[name, "last_loaded_at"]),
         int(listing.at[name, "closed"]))
        for name in names if name in listing.index
    )


@st.cache_resource(show_spinner="Preparing the SHAP explainer…", max_entries=4)
def explainer(version: int, uri: str) -> Explainer:
    """The SHAP explainer of a registry version (its LSTM background drawn from the training data), built once."""
    from core.serving import whatif

    return whatif.build_explainer(whatif.serving_setup(load_model(version, uri)))


@st.cache_resource(show_spinner=False, max_entries=8)
def dataset_readings(name: str, fingerprint: tuple) -> pd.DataFrame:
    """All readings of one dataset with a ``dataset`` column, shared read-only between reruns and sessions."""
    with store.connect(read_only=True) as con:
        return queries.readings_many(con, [name])


@st.cache_data(show_spinner=False, max_entries=64)
def engine_truth(name: str, fingerprint: tuple) -> dict[int, float]:
    """True RUL after the last cycle per unit of a dataset (empty when it has none)."""
    with store.connect(read_only=True) as con:
        truth = queries.rul_truth(con, name)
    return {int(u): float(r) for u, r in zip(truth["unit"], truth["rul"])}


def kept(key: str) -> str:
    """Widget key mirroring session value `key`, so the widget keeps its value across page switches.

    Streamlit forgets a widget's state when a run does not draw it (another page); the page
    stores the widget's value back into `key` after drawing it.
    """
    widget = f"_{key}"
    if widget not in st.session_state:
        st.session_state[widget] = st.session_state[key]
    return widget


def model_and_data() -> tuple[int, Ensemble, pd.DataFrame]:
    """(version, ensemble, datasets) for pages that need both; otherwise say what is missing and stop the page."""
    try:
        served = serving()
        if served is None:
            no_model_notice()
            st.stop()
        listing = datasets()
    except UserError as err:
        show_error(err)
        st.stop()
    if listing.empty:
        st.warning("No fleet data is loaded yet: load the C-MAPSS files on the Data page.")
        st.page_link("pages/data.py", label="Go to Data", icon=":material/database:")
        st.stop()
    return served[0], served[1], listing


def serving() -> tuple[int, Ensemble] | None:
    """:func:`serving_model` set up for serving one request per thread (``core.serving.whatif.serving_setup``)."""
    from core.serving import whatif

    served = serving_model()
    return None if served is None else (served[0], whatif.serving_setup(served[1]))
