from kefu.close_words import close_words, did_you_mean


def test_close_words_gives_an_alias_alone_else_the_closest_spellings():
    known = ["epochs", "lr", "max_steps", "head_lr"]
    assert close_words("epoch", known) == ["epochs"]
    assert close_words("Learning_Rate", known, aliases={"learning_rate": "lr"}) == ["lr"]
    assert close_words("colour", known) == []
    # an alias to a word that is not known is no suggestion
    assert close_words("learning_rate", ["epochs"], aliases={"learning_rate": "lr"}) == []


def test_close_words_keeps_to_the_limit():
    known = ["batch_size", "eval_batch_size", "head_lr"]
    assert close_words("batchsize", known) == ["batch_size", "eval_batch_size"]
    assert close_words("batchsize", known, limit=1) == ["batch_size"]
    assert close_words(
        "num_epochs", ["epochs", "train_weights"], aliases={"num_epochs": "epochs"}
    ) == ["epochs"]


def test_did_you_mean_words_one_or_several_and_nothing_for_none():
    assert did_you_mean(["epochs"]) == "did you mean epochs?"
    assert did_you_mean(["a", "b"], quote=True) == "did you mean 'a' or 'b'?"
    assert did_you_mean([]) == ""
