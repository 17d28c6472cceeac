"""LLaVA data as published: records with and without an image, several turns in one sequence (human turns
masked, every answer learned), `<image>` where the record put it, and a length cap that never cuts an image
token; a text-only sequence in a batch takes nothing of the visual tokens."""
from __future__ import annotations

import json

import pytest
import torch

from llava_mix import write_mix
from projlab.data.conversation import IMAGE_TOKEN, Conversation
from projlab.data.prompt import TextProcessor, fitting, template_words
from projlab.data.sources import LlavaSource
from projlab.errors import UserError
from projlab.models.presets import build_tokenizer

M = 4


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> LlavaSource:
    data, images = write_mix(tmp_path_factory.mktemp("mix"), 12)
    return LlavaSource(str(data), str(images))


@pytest.fixture(scope="module")
def tokenizer(mix):
    words = {w for c in mix.items for turn in c.turns for text in turn for w in text.split() if w != IMAGE_TOKEN}
    return build_tokenizer(sorted(words) + template_words("vicuna") + template_words("plain"))


def processor(tokenizer, template: str, max_length: int | None = None) -> TextProcessor:
    return TextProcessor(tokenizer, M, tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), template, max_length)


def test_the_mix_reads_one_item_per_record_with_its_image_or_none(mix):
    assert len(mix.items) == 12
    assert [len(c.turns) for c in mix.items[:4]] == [1, 2, 3, 4]
    text_only = [i for i, c in enumerate(mix.items) if not c.has_image]
    assert text_only == [9] and not mix.has_image(9)
    assert mix.image(1).size == (96, 64) and mix.image(2).size == (64, 96)  # JPEG and PNG, nested folders
    assert mix.image(9).getextrema() == ((0, 0),) * 3  # the blank image nothing reads


def test_labels_token_by_token_in_the_vicuna_template(mix, tokenizer):
    vocab = tokenizer.get_vocab()

    def ids(text: str) -> list[int]:
        return [vocab[w] for w in text.split()]

    proc = processor(tokenizer, "vicuna")
    c = mix.items[1]  # 2 turns, "<image>\n" opening the first question
    (q1, a1), (q2, a2) = c.turns
    assert q1.startswith(IMAGE_TOKEN + "\n")
    system = "A chat between a curious user and an artificial intelligence assistant."
    human1 = ids(system) + ids("USER:") + [vocab[IMAGE_TOKEN]] * M + ids(q1.removeprefix(IMAGE_TOKEN) + " ASSISTANT:")
    human2 = ids("USER: " + q2 + " ASSISTANT:")
    reply1, reply2 = ids(a1) + [tokenizer.eos_token_id], ids(a2) + [tokenizer.eos_token_id]
    ex = proc.encode(c)
    assert ex["input_ids"] == [tokenizer.bos_token_id] + human1 + reply1 + human2 + reply2
    masked = [-100] * (1 + len(human1))
    assert ex["labels"] == masked + reply1 + [-100] * len(human2) + reply2
    assert tokenizer.unk_token_id not in ex["input_ids"]

    after = mix.items[0]  # "<image>" after the question: its tokens come after the question's
    q, a = after.turns[0]
    assert q.endswith("\n" + IMAGE_TOKEN)
    ex = proc.encode(after)
    assert ex["input_ids"] == ([tokenizer.bos_token_id] + ids(system) + ids("USER: " + q.removesuffix(IMAGE_TOKEN))
                               + [vocab[IMAGE_TOKEN]] * M + ids("ASSISTANT:") + ids(a) + [tokenizer.eos_token_id])

    second = proc.encode(mix.items[5])["input_ids"]  # the placeholder in the second human turn stays there
    first_answer = second.index(tokenizer.eos_token_id)
    assert vocab[IMAGE_TOKEN] not in second[:first_answer] and second.count(vocab[IMAGE_TOKEN]) == M

    text = proc.encode(mix.items[9])  # text-only: no image token; each answer learned
    assert vocab[IMAGE_TOKEN] not in text["input_ids"]
    learned = [t for t, label in zip(text["input_ids"], text["labels"]) if label != -100]
    assert learned == [t for _, a in mix.items[9].turns for t in ids(a) + [tokenizer.eos_token_id]]


def test_the_plain_template_chains_the_turns_without_eos(mix, tokenizer):
    vocab = tokenizer.get_vocab()
    c = mix.items[1]
    ex = processor(tokenizer, "plain").encode(c)
    learned = [t for t, label in zip(ex["input_ids"], ex["labels"]) if label != -100]
    assert learned == [vocab[w] for _, a in c.turns for w in a.split()]
    assert tokenizer.decode(ex["input_ids"]).split().count("question") == 2


def test_the_length_cap_cuts_text_after_the_image_and_drops_what_it_cannot_fit(mix, tokenizer):
    c = mix.items[3]  # 4 turns, the image in the first
    full = processor(tokenizer, "vicuna").encode(c)
    image_end = max(i for i, t in enumerate(full["input_ids"]) if t == tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
    first_answer = next(i for i, label in enumerate(full["labels"]) if label != -100)
    cap = first_answer + 2
    cut = processor(tokenizer, "vicuna", cap).encode(c)
    assert cut == {"input_ids": full["input_ids"][:cap], "labels": full["labels"][:cap]}
    assert processor(tokenizer, "vicuna", first_answer).encode(c) is None  # no answer token would be left
    assert processor(tokenizer, "vicuna", image_end).encode(c) is None  # it would cut the image tokens
    kept = fitting(mix.items, processor(tokenizer, "vicuna", image_end))
    assert 3 not in kept and 9 in kept  # the text-only record is cut, not dropped
    assert fitting(mix.items, processor(tokenizer, "vicuna")) == list(range(len(mix.items)))


@pytest.mark.parametrize("record, words", [
    ({"conversations": [{"from": "human", "value": "<image> q"}, {"from": "gpt", "value": "a"}]},
     ["record '0'", "no 'image'", IMAGE_TOKEN]),
    ({"image": "a.png", "conversations": [{"from": "human", "value": "<image> q <image>"},
                                          {"from": "gpt", "value": "a"}]}, ["2 <image> placeholders"]),
    ({"conversations": [{"from": "human", "value": "q"}, {"from": "human", "value": "a"}]}, ["alternate"]),
    ({"conversations": [{"from": "human", "value": "q"}]}, ["no human turn with an answer"]),
])
def test_a_malformed_record_is_one_line_naming_it(tmp_path, record, words):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "d.json").write_text(json.dumps([record]))
    with pytest.raises(UserError) as err:
        LlavaSource(str(tmp_path / "d.json"), str(tmp_path))
    assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), err.value


def test_a_leading_gpt_turn_and_a_last_unanswered_question_are_left_out(tmp_path):
    turns = [{"from": "gpt", "value": "hello"}, {"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"},
             {"from": "human", "value": "q2"}]
    (tmp_path / "d.json").write_text(json.dumps([{"id": "t", "conversations": turns}]))
    (c,) = LlavaSource(str(tmp_path / "d.json"), str(tmp_path)).items
    assert c == Conversation("t", [("q1", "a1")], has_image=False)


def test_a_text_only_sequence_takes_nothing_of_the_visual_tokens(cache_dir):
    from projlab.config import load_config
    from projlab import build

    model = build.model(load_config(["projector=c_abstractor", "projector.num_visual_tokens=16"])).eval()
    m, width, image = model.num_visual_tokens, model.llm.hidden_size, model.llm.image_token_id
    with_image = torch.tensor([[2] + [image] * m + [5, 6, 7]])
    text_only = torch.tensor([[2] + [8, 9] * (m // 2) + [5, 6, 7]])
    ids = torch.cat([with_image, text_only])
    ones = torch.ones_like(ids)
    visual = torch.randn(2, m, width)
    with torch.no_grad():
        both = model(ids, ones, visual_tokens=visual).logits
        alone = model(text_only, ones[:1], visual_tokens=torch.randn(1, m, width)).logits
        other_blank = model(ids, ones, visual_tokens=torch.stack([visual[0], torch.randn(m, width)])).logits
        other_image = model(ids, ones, visual_tokens=torch.stack([torch.randn(m, width), visual[1]])).logits
    assert torch.allclose(both[1], alone[0], atol=1e-5)
    assert torch.equal(both, other_blank)  # the text-only row's visual tokens change nothing
    assert not torch.allclose(both[0], other_image[0])  # the image row's are read


def test_the_feature_cache_never_runs_the_tower_on_a_text_only_record(mix, cache_dir, tmp_path):
    from projlab.models.features import cached_features, compute_features
    from projlab.models.presets import ensure_tiny_tower
    from projlab.models.vision import VisionTower

    tower = VisionTower(ensure_tiny_tower(cache_dir), feature_layer=-2)
    seen = []
    feats = cached_features(tower, lambda i: seen.append(i) or mix.image(i), len(mix.items), mix.signature(),
                            tmp_path, mix.has_image)
    assert 9 not in seen and len(seen) == len(mix.items) - 1
    assert not feats[9].any()
    assert torch.equal(feats[:2], compute_features(tower, mix.image, 2))


def test_free_form_validation_reports_its_loss_and_no_choice_figures():
    import warnings

    from projlab.training.module import MCMetrics

    metrics = MCMetrics(["counting"])
    metrics.loss.update(torch.tensor(1.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torchmetrics warns when a metric is computed before any update
        assert metrics.compute() == {"loss": 1.5}
