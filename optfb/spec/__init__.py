"""The experiment spec: one validated pydantic model, posted to the API and saved with every result.

This module must not import torch: the API process validates specs with it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TaskKind = Literal["linear_teacher", "nonlinear_teacher", "digits", "mnist"]
Activation = Literal["linear", "tanh", "sigmoid", "relu", "softplus"]
Loss = Literal["mse", "cross_entropy"]
FeedbackMode = Literal["backprop", "random", "learned", "learned_per_step"]
InnerOptimizer = Literal["sgd", "momentum", "adam"]
Objective = Literal["sum", "mean", "final"]
ForwardInit = Literal["uniform", "normal", "xavier", "kaiming", "lecun"]

# Upper bounds keep one spec from asking a worker for more than a GPU holds; they are generous for
# research use and each error names the bound it hit.
MAX_WIDTH = 65_536
MAX_LAYERS = 32
MAX_STEPS = 1_000_000
MAX_BATCH = 65_536
# Elements (floats) that one kind of tensor of a run may hold in all: 2^28 is 1 GiB in float32.
MAX_ELEMENTS = 2**28

Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]
Steps = Annotated[int, Field(ge=1, le=MAX_STEPS)]
Rate = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Beta = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]

# Input and output sizes that a data set fixes; the teacher tasks take any.
DATASET_DIMS = {"digits": (64, 10), "mnist": (784, 10)}
TASK_LOSS: dict[str, Loss] = {
    "linear_teacher": "mse",
    "nonlinear_teacher": "mse",
    "digits": "cross_entropy",
    "mnist": "cross_entropy",
}


class _Strict(BaseModel):
    """Unknown fields are refused: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSpec(_Strict):
    kind: TaskKind = "linear_teacher"
    # None: the task's own size (linear/nonlinear teacher 30 -> 10, digits 64 -> 10, mnist 784 -> 10).
    input_dim: Width | None = None
    output_dim: Width | None = None
    # Hidden widths of the random tanh teacher network (nonlinear_teacher only).
    teacher_hidden: list[Width] = Field(default_factory=lambda: [20], max_length=MAX_LAYERS)
    # Standard deviation of Gaussian noise added to teacher targets.
    noise: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    # Draw a new teacher (or a new data order) at every outer step, so that B must work for new
    # problems rather than memorise one.
    resample: bool = True

    @model_validator(mode="after")
    def _dims_fit_dataset(self) -> TaskSpec:
        fixed = DATASET_DIMS.get(self.kind)
        if fixed is not None:
            for field, given, want in zip(("input_dim", "output_dim"), self.dims, fixed, strict=True):
                if given != want:
                    raise ValueError(f"task.{field} is {given} but {self.kind} has {want}; omit it")
        return self

    @property
    def dims(self) -> tuple[int, int]:
        default = DATASET_DIMS.get(self.kind, (30, 10))
        return (self.input_dim or default[0], self.output_dim or default[1])

    @property
    def loss(self) -> Loss:
        return TASK_LOSS[self.kind]

    @property
    def is_classification(self) -> bool:
        return self.loss == "cross_entropy"


class NetworkSpec(_Strict):
    hidden: list[Width] = Field(default_factory=lambda: [20], max_length=MAX_LAYERS)
    activation: Activation = "tanh"
    # Forward-weight initialiser: "uniform"/"normal" use init_scale (Lillicrap: U[-0.01, 0.01]
    # forward weights); "xavier", "kaiming" and "lecun" are the usual fan-in/fan-out schemes.
    init: ForwardInit = "uniform"
    init_scale: Rate = 0.01


class FeedbackSpec(_Strict):
    mode: FeedbackMode = "learned"
    # Initial law of B (and of the iid baseline): U[-scale, scale] or N(0, scale^2).
    init: Literal["uniform", "normal"] = "uniform"
    scale: Rate = 0.5
    # Divide scale by sqrt(d_l), the fan-in of the backward map E_l -> E_l B_l^T.
    fan_in: bool = False


class InnerSpec(_Strict):
    optimizer: InnerOptimizer = "sgd"
    lr: Rate = 0.01
    steps: Steps = 100
    batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH)] = 32
    momentum: Beta = 0.9
    nesterov: bool = False
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: Rate = 1e-8
    weight_decay: float = Field(default=0.0, ge=0, allow_inf_nan=False)


Checkpoint = Literal["auto", "none", "sqrt"] | Annotated[int, Field(ge=1, le=MAX_STEPS)]


class OuterSpec(_Strict):
    optimizer: Literal["adam"] = "adam"
    lr: Rate = 0.001
    steps: Annotated[int, Field(ge=0, le=MAX_STEPS)] = 200
    objective: Objective = "sum"
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    # Clip each problem's meta-gradient to this global norm (over all B); None: no clipping.
    clip_norm: Rate | None = None
    # Draw new initial forward weights at every outer step (else the outer step 0 draw is reused).
    resample_init: bool = True
    # Held-out examples for objective "final" (None: inner.batch_size).
    heldout_size: Annotated[int, Field(ge=1, le=MAX_BATCH)] | None = None
    # Gradient checkpointing of the unroll: "none" keeps every step, "sqrt" recomputes segments
    # of ~sqrt(N) steps, an integer k uses segments of k steps, "auto" picks by size.
    checkpoint: Checkpoint = "auto"


class EvalSpec(_Strict):
    # Inner-training horizons M to evaluate at (M may be far larger than inner.steps).
    # None: [inner.steps, 10 * inner.steps].
    horizons: list[Steps] | None = Field(default=None, min_length=1, max_length=16)
    seeds: Annotated[int, Field(ge=1, le=1024)] = 5
    # Analysis samples (angles, spectra) are taken at this many points along each horizon.
    analysis_points: Annotated[int, Field(ge=2, le=1000)] = 20


class ExperimentSpec(_Strict):
    name: str = Field(default="experiment", min_length=1, max_length=200)
    seed: Annotated[int, Field(ge=0, le=2**62)] = 0
    task: TaskSpec = Field(default_factory=TaskSpec)
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    feedback: FeedbackSpec = Field(default_factory=FeedbackSpec)
    inner: InnerSpec = Field(default_factory=InnerSpec)
    outer: OuterSpec = Field(default_factory=OuterSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    # K independent meta-learning problems (seeds seed .. seed+K-1) run as one batched program.
    population: Annotated[int, Field(ge=1, le=4096)] = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "float64"] = "float32"

    @field_validator("name")
    @classmethod
    def _printable_name(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("name must be printable text without control characters")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        if self.network.hidden == [] and self.feedback.mode != "backprop":
            raise ValueError(
                "network.hidden is empty: with no hidden layer there is no feedback matrix; "
                "add a hidden layer or use feedback.mode backprop"
            )
        for what, count in self.tensor_sizes().items():
            if count > MAX_ELEMENTS:
                raise ValueError(
                    f"the {what} would hold {count:,} floats, over the limit of {MAX_ELEMENTS:,}; "
                    "use fewer or narrower layers, fewer inner steps or a smaller population"
                )
        return self

    @property
    def sizes(self) -> list[int]:
        """Layer sizes d_0 .. d_L."""
        d_in, d_out = self.task.dims
        return [d_in, *self.network.hidden, d_out]

    @property
    def horizons(self) -> list[int]:
        return self.eval.horizons or [self.inner.steps, 10 * self.inner.steps]

    @property
    def meta_trained(self) -> bool:
        return self.feedback.mode in ("learned", "learned_per_step")

    def tensor_sizes(self) -> dict[str, int]:
        """Floats held at once by the whole population: forward weights, feedback, one batch's activations."""
        sizes, k = self.sizes, self.population
        weights = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
        feedback = sum(a * b for a, b in zip(sizes[1:-1], sizes[2:], strict=False))
        if self.feedback.mode == "learned_per_step":
            feedback *= self.inner.steps
        return {
            "forward weights": k * weights,
            "feedback matrices": k * feedback,
            "activations of one batch": k * self.inner.batch_size * sum(sizes),
        }


def format_validation_error(exc: Any) -> str:
    """One line per problem, each naming the field path: what the CLI and the API show a person."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "spec"
        lines.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(lines)
