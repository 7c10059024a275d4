"""The bare session start the spark-submit figures subtract: a SparkSession and a first trivial job.

Run as `spark-submit --master local[*] bench/bare_session.py` by bench/run.py.
"""

from pyspark.sql import SparkSession

if __name__ == "__main__":
    spark = SparkSession.builder.appName("bare-session").getOrCreate()
    spark.range(1).count()
