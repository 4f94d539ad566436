"""InfiniteYou (FLUX + InfuseNet) on current diffusers, written against diffusers 0.42.

Per denoising step, InfuseNet (a FluxControlNetModel) reads the current latents, the control-image
latents, the timestep, guidance 1.0, the pooled CLIP text embedding and, as its
`encoder_hidden_states`, the identity tokens: a Resampler over the 512-d ArcFace (IR-SE50) embedding
of the reference face, with `txt_ids` zeros(8, 3). Its residual lists, scaled by alpha times keep[i]
for the [start, end] window, go to the backbone's `controlnet_block_samples` and
`controlnet_single_block_samples`. The backbone is FLUX.1-dev (guidance 3.5) or FLUX.1-schnell (no
guidance embedding, guidance_scale 0): the paper's swap changes only the backbone and the guidance.

idrift drives the loop itself instead of subclassing FluxControlNetPipeline, so that it can time
InfuseNet and the backbone separately, skip InfuseNet when its scale is 0, reuse text and identity
encodings across runs, and read the x0 prediction off the trajectory.

Noise and decoding are those of the official pipeline (InfiniteYou's `FluxInfuseNetPipeline` on diffusers'
`FluxControlNetPipeline`), so that seed S gives InfiniteYou's image for seed S: one `torch.Generator` per
sample, on the execution device, seeded with the sample's seed, draws first the VAE posterior sample of
the control image (`latent_dist.sample`: shape and dtype of the posterior mean) and then the initial
latents (`prepare_latents`: `randn_tensor` in the backbone's dtype), both through diffusers'
`randn_tensor`. The two draws are thus independent. The decoded image goes to 8 bit through
`VaeImageProcessor`'s own postprocess arithmetic (denormalised in the decoder's dtype). CPU and CUDA
generators give different numbers for one seed, so images depend on the device type (`noise_provenance`).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from idrift.accel.cuda_graphs import clone_tensors
from idrift.config import GenerationResult, RunSpec
from idrift.errors import NonFiniteError
from idrift.models.bundle import ModelBundle
from idrift.models.ir_se50 import face_crop_to_tensor
from idrift.pipeline.batch import BatchInputs, check_batch, nonfinite_samples
from idrift.pipeline.control import black_canvas, draw_keypoints, fit_keypoints
from idrift.pipeline.latents import flux_shift, latent_image_ids, pack_latents, unpack_latents

INFUSENET_GUIDANCE = 1.0  # InfiniteYou feeds InfuseNet guidance 1.0 whatever the backbone's guidance


@dataclass(frozen=True)
class IdentityReference:
    """A reference photo and the face chosen in it (keypoints in insightface's 5-point order)."""

    key: str  # identity id; caches its embedding
    image: np.ndarray  # RGB uint8 (H, W, 3)
    kps: np.ndarray  # (5, 2) float pixels


@dataclass
class _PromptEncoding:
    prompt_embeds: torch.Tensor
    pooled: torch.Tensor
    text_ids: torch.Tensor


@dataclass
class _NullTimer:
    seconds: dict = field(default_factory=dict)

    def stage(self, name: str):
        return contextlib.nullcontext()


def infusenet_keep(step: int, total: int, start: float, end: float) -> float:
    """1 where InfuseNet is active at step `step` of `total` for the [start, end] window, else 0."""
    return 1.0 - float(step / total < start or (step + 1) / total > end)


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) in [-1, 1] -> PIL RGB, as diffusers' `VaeImageProcessor.postprocess` does it: denormalised
    ((x * 0.5 + 0.5).clamp(0, 1)) in the decoder's dtype, then float32 on the CPU, * 255, rounded."""
    denormalised = VaeImageProcessor.denormalize(image[:1])
    return VaeImageProcessor.numpy_to_pil(VaeImageProcessor.pt_to_numpy(denormalised))[0]


NOISE_SCHEME = "infiniteyou-official/1"  # what noise_provenance describes; bumps when the draws change


def noise_provenance(device) -> dict:
    """How the noise of a run on `device` is drawn: recorded with every run, since one seed gives other
    numbers on another device type (CPU and CUDA generators differ)."""
    return {"scheme": NOISE_SCHEME, "generator_device": torch.device(device).type,
            "draws": ["vae posterior sample of the control image (vae dtype)",
                      "initial latents (backbone dtype)"]}


@dataclass
class PipelineHooks:
    """The three places where an accelerator (idrift.accel) changes how the pipeline computes; all None on
    the reference path. The pipeline knows only these hooks, not the techniques behind them.

    step_cache: a callable that makes each backbone call instead of the loop and may reuse earlier steps'
        work (idrift.accel.step_cache, lossy); its reset() runs at the start of every image.
    call_graphs: CUDA graphs of the GPU calls (idrift.accel.cuda_graphs, lossless). With a step cache on,
        the backbone runs through the cache, not a graph.
    step_modulation: per-step AdaLayerNorm rows computed before the loop (idrift.accel.modulation,
        lossless): the models whose layers it installed read their step's row.
    """

    step_cache: Any = None
    call_graphs: Any = None
    step_modulation: Any = None


class InfiniteYouPipeline:
    def __init__(self, bundle: ModelBundle):
        self.bundle = bundle
        self.device = bundle.device
        self.dtype = bundle.dtype
        self.vae_scale = 2 ** (len(bundle.vae.config.block_out_channels) - 1)
        self._prompt_cache: dict[str, _PromptEncoding] = {}
        self._identity_cache: dict[str, torch.Tensor] = {}
        self._control_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.hooks = PipelineHooks()  # where idrift.accel installs what it adds to the loop

    def clear_caches(self) -> None:
        """Forget cached text, identity and control encodings (end-to-end latency includes them)."""
        self._prompt_cache.clear()
        self._identity_cache.clear()
        self._control_cache.clear()

    # ---- conditioning, each cached across runs -------------------------------------------------
    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> _PromptEncoding:
        if prompt not in self._prompt_cache:
            b = self.bundle
            clip_ids = b.tokenizer(prompt, padding="max_length", max_length=b.tokenizer.model_max_length,
                                   truncation=True, return_tensors="pt").input_ids.to(self.device)
            pooled = self._run("clip", lambda ids: b.text_encoder(ids, output_hidden_states=False).pooler_output,
                               keep=True, ids=clip_ids).to(self.dtype)
            t5_ids = b.tokenizer_2(prompt, padding="max_length", max_length=b.max_sequence_length,
                                   truncation=True, return_tensors="pt").input_ids.to(self.device)
            prompt_embeds = self._run("t5", lambda ids: b.text_encoder_2(ids, output_hidden_states=False)[0],
                                      keep=True, ids=t5_ids).to(self.dtype)
            text_ids = torch.zeros(prompt_embeds.shape[1], 3, device=self.device, dtype=self.dtype)
            self._prompt_cache[prompt] = _PromptEncoding(prompt_embeds, pooled, text_ids)
        return self._prompt_cache[prompt]

    def _face_crop(self, reference: IdentityReference) -> torch.Tensor:
        """The reference face's 112x112 norm_crop as the IR-SE50 encoder's input tensor."""
        from insightface.utils.face_align import norm_crop  # heavy import, needed only here

        crop = norm_crop(reference.image, landmark=np.asarray(reference.kps, dtype=np.float32), image_size=112)
        return face_crop_to_tensor(crop, self.device, next(self.bundle.id_encoder.parameters()).dtype)

    def _identity_tokens(self, crop: torch.Tensor) -> torch.Tensor:
        """The Resampler's identity tokens from the 512-d IR-SE50 embedding of a face crop."""
        proj = self.bundle.image_proj
        embedding = self.bundle.id_encoder(crop).float()
        return proj(embedding[:, None].to(next(proj.parameters()).dtype))

    @torch.no_grad()
    def identity_tokens(self, reference: IdentityReference) -> torch.Tensor:
        if reference.key not in self._identity_cache:
            tokens = self._run("identity_tokens", self._identity_tokens, keep=True, crop=self._face_crop(reference))
            self._identity_cache[reference.key] = tokens.to(self.dtype)
        return self._identity_cache[reference.key]

    def generator(self, spec: RunSpec) -> torch.Generator:
        """The sample's generator: on the execution device, seeded with its seed, as `seed_everything(seed)`
        seeds the device's default generator in InfiniteYou's own code. It draws the control posterior sample
        and then the initial latents (`noise`)."""
        return torch.Generator(device=self.device).manual_seed(spec.seed)

    def control_canvas(self, reference: IdentityReference, spec: RunSpec) -> Image.Image:
        """The InfuseNet control image of `spec`: the reference keypoints drawn on black, or all black."""
        size = (spec.width, spec.height)
        if spec.control == "keypoints":
            h, w = reference.image.shape[:2]
            return draw_keypoints(fit_keypoints(reference.kps, (w, h), size), size)
        return black_canvas(size)

    @torch.no_grad()
    def control_latents(self, reference: IdentityReference, spec: RunSpec,
                        generator: torch.Generator | None = None) -> torch.Tensor:
        """The packed control latents: a sample of the VAE posterior of the control image, drawn from
        `generator` (None: the sample's own fresh generator, whose first draw this is)."""
        size = (spec.width, spec.height)
        vae = self.bundle.vae
        cache_key = (reference.key, spec.control, size)
        if cache_key not in self._control_cache:  # the posterior depends on the canvas only
            # uint8 to the device first: converting 3 M pixels on the CPU left the H100 idle (a 54 ms gap under
            # the profiler). The float32 arithmetic is VaeImageProcessor.preprocess's: x / 255, then 2x - 1.
            canvas = np.array(self.control_canvas(reference, spec))
            pixels = torch.from_numpy(canvas).to(self.device).permute(2, 0, 1)[None].float() / 255.0
            pixels = VaeImageProcessor.normalize(pixels)
            self._control_cache[cache_key] = self._run("vae_encode", self._posterior, keep=True,
                                                       pixels=pixels.to(vae.dtype))
        mean, std = self._control_cache[cache_key]
        generator = self.generator(spec) if generator is None else generator
        # DiagonalGaussianDistribution.sample: randn_tensor of the mean's shape, device and dtype.
        sample = randn_tensor(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        latents = mean + std * sample
        latents = (latents - vae.config.shift_factor) * vae.config.scaling_factor
        return pack_latents(latents).to(self.dtype)

    def _posterior(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dist = self.bundle.vae.encode(pixels).latent_dist
        return dist.mean, dist.std

    # ---- generation --------------------------------------------------------------------------
    def scheduler_for(self, spec: RunSpec, image_seq_len: int, total_steps: int) -> FlowMatchEulerDiscreteScheduler:
        config = self.bundle.scheduler_configs[spec.backbone]
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(config)
        sigmas = np.linspace(1.0, 1 / total_steps, total_steps)
        mu = flux_shift(image_seq_len, config) if config.get("use_dynamic_shifting") else None
        scheduler.set_timesteps(sigmas=sigmas, mu=mu, device=self.device)
        return scheduler

    def latent_size(self, spec: RunSpec) -> tuple[int, int]:
        """(latent_h, latent_w) of `spec`'s initial latents, as FluxPipeline.prepare_latents computes them."""
        return 2 * (spec.height // (self.vae_scale * 2)), 2 * (spec.width // (self.vae_scale * 2))

    def initial_latents(self, spec: RunSpec, generator: torch.Generator | None = None) -> tuple[torch.Tensor, int, int]:
        """The packed initial latents drawn from `generator` (prepare_latents: randn_tensor in the backbone's
        dtype). None: the sample's own fresh generator, after the control posterior draw it makes first, so
        that this is seed S's initial noise whatever else was drawn."""
        if generator is None:
            generator = self.generator(spec)
            self._skip_control_draw(spec, generator)
        channels = self.bundle.vae.config.latent_channels
        latent_h, latent_w = self.latent_size(spec)
        noise = randn_tensor((1, channels, latent_h, latent_w), generator=generator, device=self.device,
                             dtype=self.dtype)
        return pack_latents(noise), latent_h, latent_w

    def _skip_control_draw(self, spec: RunSpec, generator: torch.Generator) -> None:
        """Advance `generator` past the control posterior draw (same shape, dtype and device, not used)."""
        vae = self.bundle.vae
        shape = (1, vae.config.latent_channels, spec.height // self.vae_scale, spec.width // self.vae_scale)
        randn_tensor(shape, generator=generator, device=self.device, dtype=vae.dtype)

    def noise(self, reference: IdentityReference, spec: RunSpec) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """(control latents, initial latents, latent_h, latent_w) of one sample, drawn in the official order
        from the sample's own generator: two independent draws."""
        generator = self.generator(spec)
        control = self.control_latents(reference, spec, generator)
        latents, latent_h, latent_w = self.initial_latents(spec, generator)
        return control, latents, latent_h, latent_w

    def _timestep(self, t: torch.Tensor, batch: int) -> torch.Tensor:
        """A scheduler timestep as both models take it: one per sample, divided by 1000, in the models' dtype."""
        return t.expand(batch).to(self.dtype) / 1000

    def _infusenet_guidance(self, batch: int) -> torch.Tensor | None:
        if not self.bundle.infusenet.config.guidance_embeds:
            return None
        return torch.full((batch,), INFUSENET_GUIDANCE, device=self.device, dtype=torch.float32)

    @torch.no_grad()
    def infusenet_residuals(self, latents, t, control, id_tokens, pooled, img_ids, scale: float, modulation=None):
        """InfuseNet's residual lists for one step, already multiplied by `scale` (alpha * keep). `modulation`:
        this step's row of InfuseNet's `modulation_table`, or None."""
        infusenet = self.bundle.infusenet
        txt_ids = torch.zeros(id_tokens.shape[1], 3, device=self.device, dtype=self.dtype)
        with self._modulation_rows(infusenet, modulation):
            return infusenet(
                hidden_states=latents, controlnet_cond=control, conditioning_scale=scale,
                timestep=self._timestep(t, latents.shape[0]), guidance=self._infusenet_guidance(latents.shape[0]),
                pooled_projections=pooled, encoder_hidden_states=id_tokens, txt_ids=txt_ids, img_ids=img_ids,
                return_dict=False,
            )

    def _velocity(self, backbone, modulation=None, **inputs) -> torch.Tensor:
        """The backbone's prediction for one step; `modulation`: this step's row of its `modulation_table`."""
        with self._modulation_rows(backbone, modulation):
            return backbone(**inputs, return_dict=False)[0]

    def _modulation_rows(self, model, row):
        if self.hooks.step_modulation is None:
            return contextlib.nullcontext()
        return self.hooks.step_modulation.rows(model, row)

    def modulation_table(self, model, timesteps, guidance, pooled) -> torch.Tensor | None:
        """Every step's AdaLayerNorm rows of `model` for these scheduler `timesteps` (idrift.accel.modulation),
        or None when the pipeline has no step modulation for it."""
        if self.hooks.step_modulation is None or not self.hooks.step_modulation.installed(model):
            return None
        steps = torch.stack([self._timestep(t, pooled.shape[0]) for t in timesteps])
        return self.hooks.step_modulation.table(model, steps, guidance, pooled)

    def _run(self, name: str, fn, *, keep: bool = False, **kwargs):
        """fn(**kwargs), replayed from a CUDA graph when the pipeline has them. The outputs are then the graph's
        buffers, valid until that graph's next replay; `keep` returns a copy instead (for the caches)."""
        if self.hooks.call_graphs is None:
            return fn(**kwargs)
        outputs = self.hooks.call_graphs(name, fn, **kwargs)
        return clone_tensors(outputs) if keep else outputs

    @torch.no_grad()
    def decode(self, packed: torch.Tensor, latent_h: int, latent_w: int, specs: list[RunSpec]) -> list[Image.Image]:
        """Packed latents (B, tokens, C*4) -> one PIL image per spec, decoded as one VAE batch."""
        vae = self.bundle.vae
        latents = unpack_latents(packed, latent_h, latent_w)
        latents = latents / vae.config.scaling_factor + vae.config.shift_factor
        # The graph's output buffer is read into PIL images before the next decode replays it.
        pixels = self._run("vae_decode", lambda z: vae.decode(z, return_dict=False)[0], z=latents.to(vae.dtype))
        bad = nonfinite_samples(pixels, specs)
        if bad:
            raise NonFiniteError(f"VAE decode produced NaN/inf pixels for sample(s) {bad}")
        return [tensor_to_pil(pixels[i:i + 1]) for i in range(pixels.shape[0])]

    @torch.no_grad()
    def __call__(self, spec: RunSpec, reference: IdentityReference, *, timer=None,
                 trajectory_steps: tuple[int, ...] = ()) -> GenerationResult:
        """Generate one image for `spec`. `trajectory_steps` also decodes the x0 prediction
        (x0 = x_t - sigma_t * v) after each listed step; the last step's x0 is the final image."""
        return self.generate_batch([spec], reference, timer=timer, trajectory_steps=trajectory_steps)[0]

    @torch.no_grad()
    def generate_batch(self, specs: list[RunSpec], reference: IdentityReference, *, timer=None,
                       trajectory_steps: tuple[int, ...] = ()) -> list[GenerationResult]:
        """Generate samples that differ only in their seed as one batch (one result per spec, in order).

        Every sample keeps its own generator (control draw, then noise), so a batched image equals
        the one generated alone up to bf16/float reassociation (other matmul shapes), not bitwise. The
        stage seconds in each result are those of the whole batch."""
        specs = list(specs)
        total = check_batch(specs, trajectory_steps)
        timer = timer or _NullTimer()
        batch, latents = self._prepare(specs, reference, timer)
        scheduler = self.scheduler_for(batch.first, latents.shape[1], total)
        latents, x0_predictions = self._denoise(batch, latents, scheduler, total, trajectory_steps, timer)
        with timer.stage("vae_decode"):
            images, trajectories = self._decode_batch(batch, latents, x0_predictions, trajectory_steps)
        return [GenerationResult(image=image, stage_seconds=dict(timer.seconds), trajectory=trajectory)
                for image, trajectory in zip(images, trajectories)]

    def _prepare(self, specs: list[RunSpec], reference: IdentityReference, timer) -> tuple[BatchInputs, torch.Tensor]:
        """The batch's inputs and its packed initial latents: the text and identity encodings, expanded to
        the batch, and each sample's control latents and noise, drawn from the sample's own generator."""
        first, size = specs[0], len(specs)
        backbone = self.bundle.backbone(first.backbone)
        with timer.stage("text_encoding"):
            text = self.encode_prompt(first.prompt)
        with timer.stage("id_embedding"):
            id_tokens = self.identity_tokens(reference).expand(size, -1, -1)
        with timer.stage("control_image"):  # each sample's own generator: control draw, then initial latents
            noises = [self.noise(reference, s) for s in specs]
            control = torch.cat([c for c, _, _, _ in noises])
        latents, latent_h, latent_w = torch.cat([x for _, x, _, _ in noises]), noises[0][2], noises[0][3]
        guidance = None
        if backbone.config.guidance_embeds:
            guidance = torch.full((size,), first.guidance, device=self.device, dtype=torch.float32)
        batch = BatchInputs(
            specs=specs, backbone=backbone, pooled=text.pooled.expand(size, -1),
            prompt_embeds=text.prompt_embeds.expand(size, -1, -1), text_ids=text.text_ids, id_tokens=id_tokens,
            control=control, img_ids=latent_image_ids(latent_h, latent_w, self.device, self.dtype),
            guidance=guidance, latent_h=latent_h, latent_w=latent_w,
        )
        return batch, latents

    def _denoise(self, batch: BatchInputs, latents: torch.Tensor, scheduler, total: int,
                 trajectory_steps: tuple[int, ...], timer) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """The schedule run from the initial latents: the latents after its last step, and the x0
        predictions (x0 = x_t - sigma_t * v) captured after the trajectory steps."""
        first = batch.first
        # A trajectory sample at step k is the x0 prediction of the k-th model call of a
        # `trajectory_of`-step schedule; nothing after step k affects it, so the loop stops there.
        capture = set(trajectory_steps) | ({first.steps} if first.mode == "trajectory" else set())
        last_step = first.steps if first.mode == "trajectory" else total
        x0_predictions: dict[int, torch.Tensor] = {}
        if self.hooks.step_cache is not None:
            self.hooks.step_cache.reset()
        timesteps = scheduler.timesteps[:last_step]
        scales = [first.alpha * infusenet_keep(i, total, first.infuse_start, first.infuse_end)
                  for i in range(len(timesteps))]
        infusenet_rows, backbone_rows = self._modulation_tables(batch, timesteps, any(scales), timer)
        for i, t in enumerate(timesteps):
            velocity = self._step_velocity(batch, i, t, latents, scales[i], timer,
                                           infusenet_row=None if infusenet_rows is None else infusenet_rows[i],
                                           backbone_row=None if backbone_rows is None else backbone_rows[i])
            nonfinite = nonfinite_samples(velocity, batch.specs)
            if nonfinite:
                raise NonFiniteError(f"{first.backbone} produced NaN/inf at step {i + 1}/{total} "
                                     f"for sample(s) {nonfinite}")
            if i + 1 in capture:
                x0_predictions[i + 1] = latents - scheduler.sigmas[i] * velocity
            latents = scheduler.step(velocity, t, latents, return_dict=False)[0]
        return latents, x0_predictions

    def _modulation_tables(self, batch: BatchInputs, timesteps, infusenet_active: bool, timer) -> tuple:
        """(InfuseNet's, the backbone's) modulation rows for all steps, each computed in its model's own
        stage before the loop; None for a model whose rows are not precomputed."""
        infusenet_rows = backbone_rows = None
        if self.hooks.step_modulation is not None:
            if infusenet_active:
                with timer.stage("infusenet"):
                    infusenet_rows = self.modulation_table(self.bundle.infusenet, timesteps,
                                                           self._infusenet_guidance(batch.size), batch.pooled)
            if self.hooks.step_cache is None:  # the step cache calls the blocks itself: they compute their own
                with timer.stage("backbone"):
                    backbone_rows = self.modulation_table(batch.backbone, timesteps, batch.guidance, batch.pooled)
        return infusenet_rows, backbone_rows

    def _step_velocity(self, batch: BatchInputs, i: int, t: torch.Tensor, latents: torch.Tensor, scale: float,
                       timer, *, infusenet_row=None, backbone_row=None) -> torch.Tensor:
        """The backbone's velocity at step `i`, given InfuseNet's residuals scaled by `scale` (no InfuseNet
        call at 0): through the step cache when there is one, else one backbone call."""
        block_samples = single_samples = None
        if scale != 0.0:  # an inactive InfuseNet adds nothing: skip its cost
            with timer.stage("infusenet"):
                block_samples, single_samples = self._run(
                    "infusenet", self.infusenet_residuals, latents=latents, t=t, control=batch.control,
                    id_tokens=batch.id_tokens, pooled=batch.pooled, img_ids=batch.img_ids, scale=scale,
                    modulation=infusenet_row)
        with timer.stage("backbone"):
            inputs = dict(
                hidden_states=latents, timestep=self._timestep(t, batch.size), guidance=batch.guidance,
                pooled_projections=batch.pooled, encoder_hidden_states=batch.prompt_embeds,
                controlnet_block_samples=block_samples, controlnet_single_block_samples=single_samples,
                txt_ids=batch.text_ids, img_ids=batch.img_ids,
            )
            if self.hooks.step_cache is not None:
                return self.hooks.step_cache(batch.backbone, step=i, **inputs)
            # The key names this backbone object: a rebuilt one has other weight addresses.
            key = f"backbone:{batch.first.backbone}:{id(batch.backbone)}"
            return self._run(key, functools.partial(self._velocity, batch.backbone), modulation=backbone_row, **inputs)

    def _decode_batch(self, batch: BatchInputs, latents: torch.Tensor, x0_predictions: dict[int, torch.Tensor],
                      trajectory_steps: tuple[int, ...]) -> tuple[list[Image.Image], list[dict[int, Image.Image]]]:
        """The final images (a trajectory sample's: the x0 of its step) and, per sample, the decoded x0 of
        each listed trajectory step."""
        final = x0_predictions[batch.first.steps] if batch.first.mode == "trajectory" else latents
        images = self.decode(final, batch.latent_h, batch.latent_w, batch.specs)
        trajectories = [{} for _ in batch.specs]
        for k, x0 in sorted(x0_predictions.items()):
            if k in trajectory_steps:
                decoded = self.decode(x0, batch.latent_h, batch.latent_w, batch.specs)
                for per_sample, image in zip(trajectories, decoded):
                    per_sample[k] = image
        return images, trajectories
