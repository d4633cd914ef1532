"""AWS Glue's entry point for stepml's Spark path: the job runs stepml.spark_job (from glue/stepml.zip,
the job's --extra-py-files). `make deploy` uploads both to the data bucket under glue/."""

import runpy

runpy.run_module("stepml.spark_job", run_name="__main__", alter_sys=True)
