"""The public API changes only on purpose (httpx's test of the same name)."""

import sparkscore


def test_exported_members_are_pinned():
    assert sparkscore.__all__ == sorted(sparkscore.__all__)
    assert sparkscore.__all__ == [
        "AccountingError",
        "BatchTimeoutError",
        "DriftError",
        "EnvironmentBuildError",
        "ErrorThresholdExceeded",
        "ImageShapeError",
        "InputError",
        "LedgerModelError",
        "MissingColumnError",
        "MissingDependencyError",
        "MissingPassthroughError",
        "Model",
        "ModelEnvironmentError",
        "ModelFormatError",
        "ModelLoadError",
        "ModelProcessError",
        "NoRunError",
        "OutputError",
        "ParamError",
        "PassthroughConflictError",
        "PassthroughTypeError",
        "PredictError",
        "PythonVersionError",
        "ReadError",
        "ReferenceProfileError",
        "ResumeError",
        "SchemaEnforcementError",
        "ScoringScriptError",
        "ScriptWorkerDiedError",
        "Settings",
        "SettingsError",
        "SparkPipelineError",
        "SparkscoreError",
        "TableSchemaError",
        "TensorShapeError",
        "UnsupportedInputError",
        "UntrustedTypeError",
        "WorkerDiedError",
        "__version__",
        "load_model",
        "score",
        "spark_udf",
        "transform",
    ]
    for name in sparkscore.__all__:
        assert hasattr(sparkscore, name), name
