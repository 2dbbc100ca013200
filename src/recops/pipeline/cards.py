"""Metaflow cards of the training flow: training curves, test metrics with example answers, and
the executed report notebook."""

from __future__ import annotations

from typing import Any


def training_card(history: list[dict[str, float]]) -> list[Any]:
    """Card components: loss and validation NDCG@10 per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from metaflow.cards import Image, Markdown, Table

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3))
    epochs = [h["epoch"] for h in history]
    left.plot(epochs, [h["loss"] for h in history], marker="o")
    left.set(xlabel="epoch", ylabel="training loss")
    right.plot(epochs, [h["valid_ndcg"] for h in history], marker="o")
    right.set(xlabel="epoch", ylabel="validation NDCG@10")
    fig.tight_layout()
    rows = [
        [h["epoch"], f"{h['loss']:.4f}", f"{h['valid_ndcg']:.4f}", f"{h['seconds']:.1f}"] for h in history
    ]
    components = [
        Markdown("## Training curves"),
        Image.from_matplotlib(fig),
        Table(rows, headers=["epoch", "loss", "valid NDCG@10", "seconds"]),
    ]
    plt.close(fig)
    return components


def evaluation_card(metrics: dict[str, float], examples: dict[str, Any]) -> list[Any]:
    from metaflow.cards import Markdown, Table

    rows = [[key, f"{value:.4f}"] for key, value in sorted(metrics.items())]
    recs = [[r["item_id"], f"{r['score']:.3f}"] for r in examples["items"]]
    return [
        Markdown("## Test metrics (full ranking, leave-one-out)"),
        Table(rows, headers=["metric", "value"]),
        Markdown(f"## Example recommendations\nsession: `{examples['session']}`"),
        Table(recs, headers=["item_id", "score"]),
    ]


def notebook_card(notebook: dict[str, Any]) -> list[Any]:
    """Render an executed notebook as card components: markdown, code, text and image outputs."""
    import base64

    from metaflow.cards import Image, Markdown, PythonCode

    components: list[Any] = []
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            components.append(Markdown(source))
            continue
        if cell["cell_type"] != "code" or "parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        components.append(PythonCode(code_string=source))
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data:
                components.append(Image(base64.b64decode(data["image/png"])))
            elif "text/plain" in data or "text" in out:
                text = "".join(data.get("text/plain", out.get("text", "")))
                components.append(Markdown(f"```\n{text.strip()}\n```"))
    return components
