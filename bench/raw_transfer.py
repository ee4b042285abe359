"""The raw lower bound for LFS transfers: a standalone boto3 script moving the files.

python bench/raw_transfer.py upload|download BUCKET PREFIX FILE...
Eight files at a time, each with boto3's managed (multipart, threaded) transfer;
timed from the process's start, as `git lfs push` is."""

import concurrent.futures
import os
import sys

import boto3


def main(direction, bucket, prefix, *paths):
    s3 = boto3.client("s3")

    def move(path):
        key = f"{prefix}/{os.path.basename(path)}"
        if direction == "upload":
            s3.upload_file(path, bucket, key)
        else:
            s3.download_file(bucket, key, path)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(move, paths))


if __name__ == "__main__":
    main(*sys.argv[1:])
