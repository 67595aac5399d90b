"""dpm-explorer's model library: Sohl-Dickstein et al. (ICML 2015), "Deep Unsupervised Learning using
Nonequilibrium Thermodynamics", in PyTorch. No Qt here: everything runs headless. The conventions and this
project's own choices are in models/README.md.

Time-index rule (one rule, everywhere)
--------------------------------------
Arrays over steps have length T and Python index ``k = t − 1``: ``beta[0]`` is β_1, ``alpha_bar[k]`` is
ᾱ_{k+1}. A state x^t carries its paper time t = 0 (data) … T (noise). ``kernel.q_marginal(x0, k)`` is
q(x^{k+1} | x^0), ``kernel.q_posterior(x0, x, k)`` is q(x^k | x^{k+1}, x^0), and ``model.reverse_step(x, k)``
takes x^{k+1} and gives p(x^k | x^{k+1}); ``k = 0`` is the fixed last step p(x^0 | x^1) (App. B).
Pinned by ``tests/models/test_model.py::test_the_time_index_rule``.

Glossary: paper symbol → code → where
--------------------------------------
β_t                         ``beta[k]``                    schedules.py, ``Schedule`` (learned: §2.4.1)
ᾱ_t = ∏(1 − β_s)            ``alpha_bar[k]``               kernels.ScheduleTensors
q(x^t | x^{t−1})            ``kernel.q_transition`` / ``q_step``   kernels/gaussian.py, kernels/binomial.py
                                                           (§2.1, Table App.1)
q(x^t | x^0)                ``kernel.q_marginal`` / ``q_sample``
q(x^{t−1} | x^t, x^0)       ``kernel.q_posterior``         (Table App.1; App. B)
π(x) = p(x^T)               ``kernel.prior_sample`` / ``prior_log_prob``
N(μ, Σ), B(x; p)            ``GaussianDist``, ``BernoulliDist``   kernels/distributions.py (sample, log_prob,
                                                           entropy, kl: what every kernel method returns)
f_μ, f_Σ, f_b               ``model.reverse_step`` → a distribution   model.py (§2.2, App. D.2.1)
                            ``ModelConfig.param``: one function per (kernel, param) in
                            ``model.PARAMETERISATIONS`` (models/README.md, Parameterisations)
g_j(t) bump functions       ``bump_basis``, ``BumpReadout`` schedules.py, networks.py (App. D.2.1)
K (Eq. 14, App. B)          ``bound.bound_terms(...).K_nats``; evaluation.py: ``exact_K``, ``live_K``
KL_t terms                  ``BoundTerms.kl_nats`` [B, T]
L_null                      ``BoundTerms.log_null_nats``   (models/README.md, Units and the null model)
H_q(X^{t−1}|X^t) bounds     ``kernel.entropy_bounds``      (Eq. 24, App. A)
AIS / Jarzynski (Eq. 9)     ``bound.ais_log_likelihood_nats``; ``evaluation.ais_estimate``
evaluation                  evaluation.py: one ``Evaluation`` result (models/README.md, Evaluation protocol)
p̃ ∝ p·r (Eq. 22, App. C)    posterior.py: the per-step pieces (``Clamp``, ``GaussianProduct``, ``SmoothShift``,
                            ``BinomialR``, RePaint, SMC); conditioning.py: the samplers (inpaint, denoise,
                            regions); images.py: pixels, masks and image writers
vocabularies                config.py: ``KINDS``, ``UNITS``, ``KERNELS``, ``PARAMS``, ``METHODS``, ...
training                    training.py: ``Trainer(...).run()`` yields ``TrainProgress``
several processes          distributed.py: ``dpm train`` under torchrun (DDP around the loss; rank 0 writes)
sampling                    sampling.py: ``reverse_steps`` / ``forward_steps`` yield ``Step(t, x)``
data sets                   data/: ``load_preset``, ``load_file`` (models/README.md, Presets and data sets)
model files (HDF5)          files/: ``save_model`` / ``load_model`` (one checked reader: files/hdf5.py;
                            models/README.md, File formats)
the ``dpm`` command         cli/ (no library module imports it)
"""
from .config import ModelConfig
from .model import DiffusionModel, StepDistribution

__all__ = ["ModelConfig", "DiffusionModel", "StepDistribution"]
