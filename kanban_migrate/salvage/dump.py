def write_dump(result, fp):
    raise NotImplementedError
