"""dpm-explorer's model library: Sohl-Dickstein et al. (ICML 2015), "Deep Unsupervised Learning using
Nonequilibrium Thermodynamics", in PyTorch. No Qt here: everything runs headless.

Time-index rule (one rule, everywhere)
--------------------------------------
Arrays over steps have length T and Python index ``k = t − 1``: ``beta[0]`` is β_1, ``alpha_bar[k]`` is
ᾱ_{k+1}. A state x^t carries its paper time t = 0 (data) … T (noise). ``model.reverse_step(x, k)`` takes
x^{k+1} and gives p(x^k | x^{k+1}); ``k = 0`` is the fixed last step p(x^0 | x^1) (App. B).

Glossary: paper symbol → code → where
--------------------------------------
β_t                         ``beta[k]``                    schedules.py, ``Schedule`` (learned: §2.4.1)
ᾱ_t = ∏(1 − β_s)            ``alpha_bar[k]``               kernels.ScheduleTensors
q(x^t | x^{t−1})            ``kernel.q_step``              kernels/gaussian.py, kernels/binomial.py (Table App.1)
q(x^t | x^0)                ``kernel.q_marginal`` / ``q_sample``
q(x^{t−1} | x^t, x^0)       ``kernel.q_posterior``         (spec §2.1, §2.2)
π(x) = p(x^T)               ``kernel.prior_sample`` / ``prior_log_prob``
f_μ, f_Σ, f_b               ``model.reverse_step`` → ``StepDistribution``   reverse.py (§4.3, Eq. in D.2.1)
                            ``ModelConfig.param``: "paper" (§4.3), "code" (reference code), "residual"
                            (binomial), "posterior" (q(x^{t−1}|x^t, x̂^0) at the net's x^0 estimate)
g_j(t) bump functions       ``bump_basis``, ``BumpReadout`` schedules.py, networks.py (§4.3)
K (Eq. 14, App. B)          ``bound.bound_terms(...).K_nats``, ``bound.evaluate_bound``
KL_t terms                  ``BoundTerms.kl_nats`` [B, T]
L_null                      ``BoundTerms.log_null_nats``
H_q(X^{t−1}|X^t) bounds     ``kernel.entropy_bounds``      (Eq. 24, §2.4)
AIS / Jarzynski (Eq. 9)     ``bound.ais_log_likelihood_nats`` (spec §7)
p̃ ∝ p·r (Eq. 22, App. C)    posterior.py: ``Clamp``, ``GaussianProduct``, ``SmoothShift``, ``BinomialR``
training                    training.py: ``Trainer(...).run()`` yields ``TrainProgress``
sampling                    sampling.py: ``reverse_steps`` / ``forward_steps`` yield ``Step(t, x)``
model files (HDF5)          checkpoint.py, io.py: ``save_model`` / ``load_model``
"""
from .config import ModelConfig
from .model import DiffusionModel, StepDistribution

__all__ = ["ModelConfig", "DiffusionModel", "StepDistribution"]
