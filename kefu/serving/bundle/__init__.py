"""The model bundle format, the one place that names bundle files, writes and validates them.

A bundle is one directory. `schema` defines it once: file names, schema version, the manifest
and calibration records and the ONNX graph contract. Training writes a bundle through `writer`
(`write_bundle`, and `update_bundle` when evaluation adds metrics and the model card); serving
reads it through `reader` (`read_bundle`), which refuses an unknown schema version, a missing
file, a hash mismatch or labels that do not match the model's outputs. Writing and reading
cannot drift apart: both take every name from `schema`, and the writer returns each bundle it
seals as `read_bundle` reads it. Nothing outside this package spells a bundle file name.

Nothing is re-exported here: each name has one home, and code that needs only a file name or
the manifest imports `schema` without the reader's tokenizer (numpy, tokenizers).
"""
