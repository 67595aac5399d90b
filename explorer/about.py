"""Help ▸ About: what the app is, a short guide to its panels and the paper's terms it shows."""

ABOUT_HTML = """
<h3>dpm-explorer</h3>
<p>Diffusion probabilistic models as in Sohl-Dickstein, Weiss, Maheswaranathan &amp; Ganguli,
<i>Deep Unsupervised Learning using Nonequilibrium Thermodynamics</i> (ICML 2015): train one, watch it
learn, scrub its forward and reverse processes, sample its posteriors.</p>

<p><b>Panels</b></p>
<ul>
<li><b>Data and model</b> (left): a preset opens its bundled <i>trained</i> model; <i>New model</i> starts an
untrained one with the settings shown; Open data / Draw use your own data. Train, Pause, Stop; Save.</li>
<li><b>Trajectory</b> (centre): the reverse process p (noise → data) or the forward diffusion q
(data → noise). Space plays, ←/→ step, Home/End jump to the ends; trajectories appear while they are
computed (Cancel stops). <b>Draw</b> paints a 2-D distribution; <b>Inpaint</b> samples posteriors.</li>
<li><b>Training: K</b> and <b>Samples</b> (right): the bound K against iterations and fixed-seed samples.</li>
<li><b>Schedule β and ᾱ</b>, <b>Entropy bounds</b>, <b>KL per step</b> (bottom), each with a t cursor that
follows the slider.</li>
</ul>

<p><b>Terms</b></p>
<ul>
<li><b>K</b>: the lower bound on the log-likelihood (Eq. 14), in bits per point, per sequence or per pixel.
<i>exact</i>: summed over every step on held-out data at the end of training; <i>held out</i>: an unbiased
estimate from a sample of the steps while training; <i>train minibatches</i>: the training objective's
one-random-step estimate.</li>
<li><b>L_null</b>: the log-likelihood of the data under the null model π(x<sup>0</sup>), the diffusion's end
distribution (a unit Gaussian, or independent bits for binary data);
<b>K − L_null</b> is what the model learned beyond it, the figure the paper's Table 1 reports.</li>
<li><b>The β₁ cap</b>: the first step β₁ is fixed; it bounds what any Gaussian reverse process can reach:
K − L_null ≤ ½·log₂((1 − ᾱ_T)/β₁) bits per dimension (drawn on the schedule plot).</li>
<li><b>Entropy bounds</b> (Eq. 24): the reverse step's conditional entropy H(X<sup>t−1</sup>|X<sup>t</sup>)
lies in the shaded band; the model's own entropy (dots) should stay inside it.</li>
<li><b>KL per step</b>: where K is lost: each step's KL term on held-out data.</li>
</ul>
"""
