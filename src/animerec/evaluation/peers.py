"""Peer libraries behind the model contract, so the runner evaluates them on the same splits.

Each peer is a `Recommender` whose name starts with its library: `surprise-svd`,
`surprise-svdpp`, `surprise-knnbaseline` (rating prediction, scikit-surprise),
`implicit-als`, `implicit-bpr`, `implicit-itemknn` (top-n, implicit) and `lightfm-warp`
(top-n, LightFM). The registry resolves these names (`animerec.models.registry.PEER_PATHS`)
but does not list them with the project's own models. A peer whose library is missing raises
`ConfigError` saying what to install when it is fitted.

Peers are for evaluation only: they cannot be saved, and the Surprise peers cannot fold in
people outside the training data (rating protocols never need it). Every peer trains on
exactly the interactions the runner gives it: the Surprise peers on the explicit ratings
with the data's rating scale, the top-n peers on the positive watch weights.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import warnings
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from animerec.data.interactions import Dataset, Interactions
from animerec.errors import ConfigError, install_hint
from animerec.models.base import ModelConfig, Recommender, iter_chunks, untrained_items_mask

logger = logging.getLogger(__name__)

# Pairs predicted per Surprise call batch when scoring whole rows.
SURPRISE_ROW_CHUNK = 64


def require(module: str, package: str, peer: str) -> Any:
    """Import `module` or raise `ConfigError` telling how to install `package`."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        extra = f" or {install_hint('peers')}" if package == "scikit-surprise" else ""
        raise ConfigError(
            f"peer {peer!r} needs the {package} package, which is not installed ({err}); "
            f"install it with `pip install {package}`{extra}"
        ) from err


def positive_user_items(user_items: sp.csr_matrix) -> sp.csr_matrix:
    """Return a float32 CSR copy of `user_items` without its negative and zero weights."""
    matrix = sp.csr_matrix(user_items, dtype=np.float32, copy=True)
    matrix.data = np.maximum(matrix.data, 0.0)
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


class PeerRecommender(Recommender):
    """Common parts of the peer adapters: no persistence, no item similarity by default."""

    library: ClassVar[str] = ""
    has_item_similarity = False

    def _get_arrays(self) -> dict[str, np.ndarray]:
        raise ConfigError(f"peer {self.name!r} is for evaluation only and cannot be saved")

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        raise ConfigError(f"peer {self.name!r} is for evaluation only and cannot be loaded")

    def _similar_items(self, item_idx: int) -> np.ndarray:
        raise ConfigError(f"peer {self.name!r} does not provide item similarities")


# --- Surprise (rating prediction) -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SurpriseConfig(ModelConfig):
    """Keyword arguments passed unchanged to the Surprise algorithm; empty means its defaults.

    `random_state` is passed to the algorithms that take one (SVD, SVD++).
    """

    options: dict = dataclasses.field(default_factory=dict)
    random_state: int = 42


class SurprisePeer(PeerRecommender):
    """A Surprise algorithm trained on the explicit ratings, with Surprise's own prediction
    (clipped by Surprise to the training data's rating scale)."""

    feedback = ("explicit",)
    config_class = SurpriseConfig
    library = "scikit-surprise"
    algorithm: ClassVar[str] = ""
    seeded: ClassVar[bool] = True

    def _fit(self, dataset: Dataset | None, interactions: Interactions) -> None:
        surprise = require("surprise", "scikit-surprise", self.name)
        ratings = interactions.ratings.tocoo()
        if ratings.nnz == 0:
            raise ConfigError(f"peer {self.name!r} needs explicit ratings; the training data has none")
        import pandas as pd

        frame = pd.DataFrame(
            {"user": ratings.row.astype(np.int64), "item": ratings.col.astype(np.int64), "rating": ratings.data.astype(float)}
        )
        reader = surprise.Reader(rating_scale=tuple(self.rating_scale_))
        trainset = surprise.Dataset.load_from_df(frame, reader).build_full_trainset()
        options = dict(self.config.options)
        if self.seeded and "random_state" not in options:
            options["random_state"] = self.config.random_state
        algorithm = getattr(surprise, self.algorithm)(**options)
        if "verbose" not in options and hasattr(algorithm, "verbose"):
            algorithm.verbose = False
        algorithm.fit(trainset)
        self.algorithm_ = algorithm
        self.untrained_ = untrained_items_mask(interactions.ratings)

    def predict_ratings(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Predict with Surprise's `predict`, one pair at a time (Surprise has no batch call)."""
        self.check_fitted()
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        items = np.atleast_1d(np.asarray(item_idx, dtype=np.int64))
        if users.shape != items.shape:
            raise ConfigError(
                f"user_idx and item_idx must have the same length, got {users.size} and {items.size}"
            )
        predict = self.algorithm_.predict
        return np.fromiter(
            (predict(int(u), int(i)).est for u, i in zip(users, items)), dtype=np.float32, count=users.size
        )

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        n_items = len(self.items_)
        scores = np.empty((user_idx.size, n_items), dtype=np.float32)
        items = np.arange(n_items)
        for rows in iter_chunks(user_idx.size, SURPRISE_ROW_CHUNK):
            for row in range(rows.start, rows.stop):
                scores[row] = self.predict_ratings(np.full(n_items, user_idx[row]), items)
        scores[:, self.untrained_] = -np.inf
        return scores

    def _score_histories(self, histories: Interactions) -> np.ndarray:
        raise ConfigError(
            f"peer {self.name!r} cannot fold in people outside the training data; "
            "evaluate it with a rating protocol (rating-holdout, rating-kfold, rating-predefined)"
        )


class SurpriseSVD(SurprisePeer):
    name = "surprise-svd"
    algorithm = "SVD"
    description = "Peer: scikit-surprise SVD (biased MF by SGD)."


class SurpriseSVDpp(SurprisePeer):
    name = "surprise-svdpp"
    algorithm = "SVDpp"
    description = "Peer: scikit-surprise SVD++."


class SurpriseKNNBaseline(SurprisePeer):
    name = "surprise-knnbaseline"
    algorithm = "KNNBaseline"
    seeded = False
    description = "Peer: scikit-surprise KNNBaseline (its defaults: user-based, MSD similarity)."


# --- implicit (top-n) -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImplicitConfig(ModelConfig):
    """Keyword arguments passed unchanged to the `implicit` model; empty means its defaults.

    `random_state` goes to the factorization models; `fold_in_regularization` is the ridge
    strength of the fold-in solve of `implicit-bpr` (see `ImplicitBPR`).
    """

    options: dict = dataclasses.field(default_factory=dict)
    random_state: int = 42
    fold_in_regularization: float = 0.1


class ImplicitPeer(PeerRecommender):
    """Common fitting of the `implicit` peers on the positive watch weights."""

    feedback = ("implicit",)
    config_class = ImplicitConfig
    library = "implicit"

    def _build(self, implicit: Any) -> Any:
        raise NotImplementedError

    def _fit(self, dataset: Dataset | None, interactions: Interactions) -> None:
        implicit = require("implicit", "implicit", self.name)
        user_items = positive_user_items(interactions.user_items)
        model = self._build(implicit)
        # implicit parallelises itself, so it warns when BLAS runs threads too. Its item-kNN
        # also warns about a COO matrix it builds internally, which is not about our input.
        with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            model.fit(user_items, show_progress=False)
        self.model_ = model
        self.user_items_ = user_items
        self.untrained_ = untrained_items_mask(user_items)

    def _finish(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float32)
        scores[:, self.untrained_] = -np.inf
        return scores


class _ImplicitFactorPeer(ImplicitPeer):
    def _options(self) -> dict[str, Any]:
        options = dict(self.config.options)
        options.setdefault("random_state", self.config.random_state)
        return options

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        factors = np.asarray(self.model_.user_factors)[user_idx]
        return self._finish(factors @ np.asarray(self.model_.item_factors).T)


class ImplicitALS(_ImplicitFactorPeer):
    """implicit's AlternatingLeastSquares; fold-in through its `recalculate_user`."""

    name = "implicit-als"
    description = "Peer: implicit AlternatingLeastSquares (implicit ALS)."

    def _build(self, implicit: Any) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(**self._options())

    def _score_histories(self, histories: Interactions) -> np.ndarray:
        user_items = positive_user_items(histories.user_items)
        people = np.arange(user_items.shape[0])
        factors = np.asarray(self.model_.recalculate_user(people, user_items))
        factors = factors.reshape(people.size, -1)
        return self._finish(factors @ np.asarray(self.model_.item_factors).T)


class ImplicitBPR(_ImplicitFactorPeer):
    """implicit's BayesianPersonalizedRanking.

    BPR has no fold-in of its own. A new person's factor is the ridge solution of
    Q_h p ≈ 1 over the items h they watched (`fold_in_regularization` × |h| on p), an
    approximation documented here because the peer would otherwise be unusable under
    strong generalization.
    """

    name = "implicit-bpr"
    description = "Peer: implicit BayesianPersonalizedRanking (BPR)."

    def _build(self, implicit: Any) -> Any:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(**self._options())

    def _score_histories(self, histories: Interactions) -> np.ndarray:
        from animerec.models.explicit import solve_ridge_rows

        watched = positive_user_items(histories.user_items)
        watched.data = np.ones_like(watched.data)
        item_factors = np.asarray(self.model_.item_factors, dtype=np.float64)
        counts = np.maximum(np.diff(watched.indptr), 1)
        ridge = self.config.fold_in_regularization * np.repeat(counts[:, None], item_factors.shape[1], axis=1)
        factors = solve_ridge_rows(watched.astype(np.float64), item_factors, ridge.astype(np.float64))
        return self._finish(factors.astype(np.float32) @ item_factors.T.astype(np.float32))


class ImplicitItemKNN(ImplicitPeer):
    """implicit's CosineRecommender: scores are the history row times the item similarity."""

    name = "implicit-itemknn"
    description = "Peer: implicit CosineRecommender (item-item cosine kNN)."

    def _build(self, implicit: Any) -> Any:
        from implicit.nearest_neighbours import CosineRecommender

        return CosineRecommender(**dict(self.config.options))

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self._finish((self.user_items_[user_idx] @ self.model_.similarity).toarray())

    def _score_histories(self, histories: Interactions) -> np.ndarray:
        rows = positive_user_items(histories.user_items)
        return self._finish((rows @ self.model_.similarity).toarray())


# --- LightFM (top-n) ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LightFMConfig(ModelConfig):
    """Keyword arguments for `lightfm.LightFM` (default loss "warp") and the training epochs."""

    options: dict = dataclasses.field(default_factory=dict)
    epochs: int = 30
    random_state: int = 42


class LightFMWARP(PeerRecommender):
    """LightFM with the WARP loss and no side features; fold-in is not supported."""

    name = "lightfm-warp"
    feedback = ("implicit",)
    config_class = LightFMConfig
    library = "lightfm"
    description = "Peer: LightFM with WARP loss (collaborative only)."

    def _fit(self, dataset: Dataset | None, interactions: Interactions) -> None:
        lightfm = require("lightfm", "lightfm", self.name)
        options = {"loss": "warp", "random_state": self.config.random_state}
        options.update(self.config.options)
        model = lightfm.LightFM(**options)
        user_items = positive_user_items(interactions.user_items).tocoo()
        model.fit(user_items, epochs=int(self.config.epochs))
        self.model_ = model
        self.untrained_ = untrained_items_mask(interactions.user_items)

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        n_items = len(self.items_)
        scores = np.empty((user_idx.size, n_items), dtype=np.float32)
        items = np.arange(n_items, dtype=np.int32)
        for row, user in enumerate(user_idx):
            scores[row] = self.model_.predict(int(user), items)
        scores[:, self.untrained_] = -np.inf
        return scores

    def _score_histories(self, histories: Interactions) -> np.ndarray:
        raise ConfigError(
            f"peer {self.name!r} cannot fold in people outside the training data; "
            "evaluate it with user-holdout, leave-k-out or temporal"
        )


PEERS: dict[str, type[PeerRecommender]] = {
    peer.name: peer
    for peer in (
        SurpriseSVD, SurpriseSVDpp, SurpriseKNNBaseline,
        ImplicitALS, ImplicitBPR, ImplicitItemKNN, LightFMWARP,
    )
}


def peer_status() -> dict[str, str]:
    """Return each peer's name with "installed" or the reason it cannot run here."""
    status = {}
    for name, peer in PEERS.items():
        module = {"scikit-surprise": "surprise", "implicit": "implicit", "lightfm": "lightfm"}[peer.library]
        try:
            importlib.import_module(module)
            status[name] = "installed"
        except ImportError as err:
            status[name] = f"not installed: {peer.library} ({err})"
    return status
