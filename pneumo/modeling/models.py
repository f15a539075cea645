"""Model builders: a compact CNN trained from scratch, and Keras Applications backbones.

Every model takes (size, size, 1) films in 0-255, scales them itself, and ends in
``logit`` (one unit, no activation) -> ``temperature`` (divides the logit by the
fitted temperature) -> ``p_pneumonia`` (sigmoid). The probability that comes out
of a shipped model is therefore already calibrated.
"""

from __future__ import annotations

ARCHITECTURES = ("cnn", "densenet121", "resnet50", "mobilenetv2", "efficientnetb0")

# The last convolutional activation of each architecture: the layer Grad-CAM explains.
# For backbones it is the nested backbone itself, whose output is its last feature map.
EXPLAIN_LAYERS = {name: "backbone" for name in ARCHITECTURES} | {"cnn": "last_conv"}


def build(
    architecture: str = "cnn",
    input_size: int = 224,
    *,
    temperature: float = 1.0,
    dropout: float = 0.3,
    weights: str | None = None,
    width: int = 32,
):
    """Build an uncompiled binary classifier.

    Args:
        architecture: one of :data:`ARCHITECTURES`.
        input_size: the square input side in pixels.
        temperature: the calibration temperature the logit is divided by.
        dropout: dropout rate before the last layer.
        weights: for backbones, a local weights file (``None`` trains from scratch).
        width: filters of the compact CNN's first block (doubled per block).

    Returns:
        A ``keras.Model`` from (size, size, 1) in 0-255 to P(pneumonia), shape (n, 1).

    Raises:
        ValueError: unknown architecture, or a temperature that is not positive.
    """
    import keras
    from keras import layers

    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose from {ARCHITECTURES}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")

    inputs = keras.Input((input_size, input_size, 1), name="film")
    x = layers.Rescaling(1.0 / 255, name="scale")(inputs)  # (n, s, s, 1) in [0, 1]
    if architecture == "cnn":
        features = _compact_cnn(x, width)
    else:
        features = _backbone(architecture, x, input_size, weights)
    x = layers.GlobalAveragePooling2D(name="pool")(features)
    x = layers.Dropout(dropout, name="dropout")(x)
    logit = layers.Dense(1, name="logit")(x)
    scaled = layers.Rescaling(1.0 / temperature, name="temperature")(logit)
    outputs = layers.Activation("sigmoid", name="p_pneumonia", dtype="float32")(scaled)
    return keras.Model(inputs, outputs, name=f"pneumo_{architecture}")


def _compact_cnn(x, width: int, prefix: str = ""):
    """Stem (stride 2) and four conv blocks; output (n, s/16, s/16, 8 * width).

    ``prefix`` starts every layer name (an ensemble's members are ``m0_``, ``m1_``, ...).
    """
    from keras import layers

    def conv(x, filters, name, strides=1):
        name = prefix + name
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                          name=f"{name}_conv")(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.Activation("relu", name=name)(x)

    x = conv(x, width // 2 + width // 4, "stem", strides=2)  # (n, s/2, s/2, 24)
    for block, filters in enumerate((width, 2 * width, 4 * width), start=1):
        x = conv(x, filters, f"block{block}_a")
        x = conv(x, filters, f"block{block}_b")
        x = layers.MaxPooling2D(2, name=f"{prefix}block{block}_pool")(x)  # halves the side
    x = conv(x, 8 * width, "block4_a")
    x = layers.SpatialDropout2D(0.1, name=f"{prefix}block4_dropout")(x)
    return conv(x, 8 * width, "last_conv")  # (n, s/16, s/16, 8 * width)


def _backbone(architecture: str, x, input_size: int, weights: str | None):
    """A Keras Applications backbone on a gray film repeated to three channels."""
    import keras
    from keras import layers

    rgb = layers.Concatenate(name="to_rgb")([x, x, x])  # (n, s, s, 3) in [0, 1]
    # Each family's own input convention, written as plain layers (safe to load).
    if architecture == "efficientnetb0":
        rgb = layers.Rescaling(255.0, name="to_255")(rgb)
    elif architecture == "mobilenetv2":
        rgb = layers.Rescaling(2.0, offset=-1.0, name="to_pm1")(rgb)
    elif architecture == "densenet121":
        rgb = layers.Normalization(mean=[0.485, 0.456, 0.406],
                                   variance=[0.229**2, 0.224**2, 0.225**2], name="imagenet_norm")(rgb)
    elif architecture == "resnet50":
        rgb = layers.Rescaling(255.0, name="to_255")(rgb)
        rgb = layers.Normalization(mean=[103.939, 116.779, 123.68], variance=[1.0, 1.0, 1.0],
                                   name="caffe_norm")(rgb)
    constructors = {
        "densenet121": keras.applications.DenseNet121,
        "resnet50": keras.applications.ResNet50,
        "mobilenetv2": keras.applications.MobileNetV2,
        "efficientnetb0": keras.applications.EfficientNetB0,
    }
    backbone = constructors[architecture](
        include_top=False, weights=weights, input_shape=(input_size, input_size, 3),
        name="backbone",
    )
    return backbone(rgb)  # (n, s/32, s/32, channels)


def build_ensemble(members: list, temperature: float = 1.0, *, dropout: float = 0.3, width: int = 32):
    """One model whose logit is the mean of compact-CNN members' logits.

    The members' feature maps are concatenated into ``last_conv`` and pooled into
    ``pool``; ``logit`` holds every member's kernel divided by the number of members
    and the mean of their biases, so it is exactly the mean of the members' logits.
    Then ``temperature`` and ``p_pneumonia`` as in :func:`build`. Grad-CAM of
    ``last_conv`` is therefore the Grad-CAM of the ensemble's own logit, and the layer
    names every other part relies on are those of a single model.

    Args:
        members: trained models from :func:`build` (architecture ``cnn``), all of one
            input size and ``width``.
        temperature: the calibration temperature the mean logit is divided by.

    Returns:
        A ``keras.Model`` from (size, size, 1) in 0-255 to P(pneumonia), shape (n, 1).

    Raises:
        ValueError: no members, or members of different input sizes.
    """
    import keras
    import numpy as np
    from keras import layers

    if not members:
        raise ValueError("an ensemble needs at least one member")
    sizes = {int(m.input.shape[1]) for m in members}
    if len(sizes) != 1:
        raise ValueError(f"members have different input sizes: {sorted(sizes)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    size = sizes.pop()
    inputs = keras.Input((size, size, 1), name="film")
    x = layers.Rescaling(1.0 / 255, name="scale")(inputs)
    towers = [_compact_cnn(x, width, prefix=f"m{i}_") for i in range(len(members))]
    features = layers.Concatenate(name="last_conv")(towers) if len(towers) > 1 else towers[0]
    x = layers.GlobalAveragePooling2D(name="pool")(features)
    x = layers.Dropout(dropout, name="dropout")(x)
    logit = layers.Dense(1, name="logit")(x)
    scaled = layers.Rescaling(1.0 / temperature, name="temperature")(logit)
    outputs = layers.Activation("sigmoid", name="p_pneumonia", dtype="float32")(scaled)
    ensemble = keras.Model(inputs, outputs, name=f"pneumo_cnn_ensemble{len(members)}")

    for i, member in enumerate(members):
        for layer in member.layers:
            if layer.weights and layer.name not in ("logit",):
                ensemble.get_layer(f"m{i}_{layer.name}").set_weights(layer.get_weights())
    kernels = [m.get_layer("logit").get_weights() for m in members]
    ensemble.get_layer("logit").set_weights([
        np.concatenate([k for k, _ in kernels], axis=0) / len(members),
        np.mean([b for _, b in kernels], axis=0),
    ])
    return ensemble


def tower_sha256(weights: list) -> str:
    """sha256 of a member's convolutional weights (every layer but ``logit``), in layer order."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for array in weights:
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


def member_tower_weights(model, index: int | None = None) -> list:
    """The convolutional weights of a single model (``index`` None) or of an ensemble's member."""
    prefix = "" if index is None else f"m{index}_"
    weights = []
    for layer in model.layers:
        if layer.weights and layer.name != "logit" and (index is None or layer.name.startswith(prefix)):
            weights += layer.get_weights()
    return weights


def explain_layer(architecture: str) -> str:
    """Name of the layer whose activations Grad-CAM explains."""
    return EXPLAIN_LAYERS[architecture]
