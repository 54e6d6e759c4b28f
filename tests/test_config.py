import pytest

from trainlab import config
from trainlab.errors import ConfigError


def test_defaults_validate_and_round_trip_through_yaml(tmp_path):
    cfg = config.load({"data": {"name": "mnist5k"}})
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    assert config.load(path).to_dict() == cfg.to_dict()


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=0.1", "did you mean 'optim.lr'"),
    ("trian.epochs=3", "did you mean 'train'"),
    ("train.epochs=three", "train.epochs: expected an integer"),
    ("optim.lr=-0.1", "optim.lr=-0.1 must be > 0"),
    ("optim.name=adamm", "did you mean 'adam'"),
    ("schedule.name=cosin", "did you mean 'cosine'"),
    ("model.name=convent", "did you mean 'convnet'"),
    ("train.precision=fp8", "not one of fp32, bf16, fp16"),
    ("train.device=gpu", "train.device='gpu' must be auto, cpu, cuda"),
    ("data.valid_fraction=1.5", "data.valid_fraction=1.5 must be in [0, 1)"),
    ("train.seed=true", "train.seed: expected an integer"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=None) as err:
        config.load({}, [override])
    assert message in str(err.value)


def test_overrides_parse_yaml_scalars_and_scientific_notation():
    cfg = config.load({}, ["optim.lr=3e-4", "train.max_steps=7", "data.root=some/dir",
                           "model.init_args.channels=[4, 8]", "train.resume=auto", "train.grad_clip=null"])
    assert cfg.optim.lr == pytest.approx(3e-4) and isinstance(cfg.optim.lr, float)
    assert cfg.train.max_steps == 7
    assert cfg.data.root == "some/dir"
    assert cfg.model.init_args == {"channels": [4, 8]}
    assert cfg.train.resume == "auto" and cfg.train.grad_clip is None


def test_int_is_accepted_for_float_fields():
    assert config.load({"optim": {"lr": 1}}).optim.lr == 1.0


def test_recipe_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="recipe not found"):
        config.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        config.load(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        config.load(listy)


def test_recipe_cannot_construct_python_objects(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("run: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(evil)
    assert not (tmp_path / "pwned").exists()


def test_run_name_defaults_to_recipe_stem(tmp_path):
    p = tmp_path / "my-lab.yaml"
    p.write_text("train: {epochs: 1}\n")
    assert config.load(p).run.name == "my-lab"



@pytest.mark.parametrize("override, key", [
    ("optim.lr=.inf", "optim.lr"),
    ("optim.lr=.nan", "optim.lr"),
    ("schedule.min_lr=-.inf", "schedule.min_lr"),
    ("train.grad_clip=1e999", "train.grad_clip"),  # an Optional[float] key; 1e999 parses to inf
    ("data.cache_max_gb=.inf", "data.cache_max_gb"),
])
def test_float_keys_must_be_finite(override, key):
    with pytest.raises(ConfigError) as err:
        config.load({}, [override])
    assert f"{key}: expected a finite number" in str(err.value)


def test_float_keys_from_a_recipe_must_be_finite():
    with pytest.raises(ConfigError, match="optim.weight_decay: expected a finite number"):
        config.from_dict({"optim": {"weight_decay": float("nan")}})


def test_each_section_checks_its_own_values():
    config.DataConfig().validate()
    with pytest.raises(ConfigError, match=r"data.batch_size=0 must be > 0"):
        config.DataConfig(batch_size=0).validate()
    with pytest.raises(ConfigError, match=r"schedule.warmup_\*=\(-1.0, 0\) must be >= 0"):
        config.ScheduleConfig(warmup_epochs=-1.0).validate()
    with pytest.raises(ConfigError, match="model.class_path='nocolon' must look like"):
        config.validate(config.Config(model=config.ModelConfig(class_path="nocolon")))


NATIVE_SHAPES = {"mnist": (1, 28, 28), "mnist5k": (1, 28, 28), "digits8x8": (1, 8, 8),
                 "cifar10": (3, 32, 32), "tiny_imagenet": (3, 64, 64)}


def test_every_recipe_loads_and_builds():
    from pathlib import Path

    import torch

    from trainlab.models import build_model
    from trainlab.sweep import is_sweep_file

    recipes = sorted((Path(__file__).parent.parent / "recipes").glob("*.yaml"))
    assert recipes
    for r in recipes:
        if is_sweep_file(r):
            continue  # sweep files name a recipe and a grid; test_sweep expands them
        cfg = config.load(r)
        if cfg.task.name != "classification":
            continue  # language-model recipes are built in their own tests
        size = cfg.data.size
        shape = ((cfg.data.channels or 3, size, size) if isinstance(size, int)
                 else NATIVE_SHAPES[cfg.data.name])
        cfg.model.weights = None  # a pretrained file named in a recipe need not exist here
        model = build_model(cfg.model, 10, shape)
        assert model(torch.zeros(2, *shape)).shape == (2, 10), r.name


def test_a_recipe_bomb_is_refused_quickly(tmp_path, monkeypatch):
    from trainlab.config import read_recipe

    laughs = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):  # 10**9 values once every alias is expanded
        laughs.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 10) + "]")
    (tmp_path / "laughs.yaml").write_text("\n".join(laughs) + "\n")
    with pytest.raises(ConfigError, match="expands to more than 100,000 values"):
        read_recipe(tmp_path / "laughs.yaml")
    (tmp_path / "big.yaml").write_text("# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="larger than a recipe can be.*TRAINLAB_MAX_YAML_BYTES"):
        read_recipe(tmp_path / "big.yaml")
    monkeypatch.setenv("TRAINLAB_MAX_YAML_BYTES", str(10 << 20))  # the user can raise the limit
    assert read_recipe(tmp_path / "big.yaml") == {}


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path):
    from trainlab.config import read_recipe

    (tmp_path / "twice.yaml").write_text("optim:\n  lr: 0.1\n  name: sgd\n  lr: 0.01\n")
    with pytest.raises(ConfigError, match=r"twice.yaml, line 4: key 'lr' appears twice .*first on line 2"):
        read_recipe(tmp_path / "twice.yaml")
    (tmp_path / "utf16.yaml").write_bytes("optim:\n  lr: 0.1\n".encode("utf-16"))
    with pytest.raises(ConfigError, match="not UTF-8.*iconv -f UTF-16"):
        read_recipe(tmp_path / "utf16.yaml")


def test_max_samples_zero_is_refused():
    with pytest.raises(ConfigError, match="data.max_samples=0 must be >= 1"):
        config.load({}, ["data.max_samples=0"])
