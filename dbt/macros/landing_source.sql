{#-
  Every landing dataset is read with the schema its source declares: exactly the declared columns, cast to their
  data_type, a column a file lacks reading as NULL. The Jinja twin of landing/reader.py (reader_call, reader_sql);
  tests/unit/test_reader.py checks that the two agree.
-#}

{#-
  A landing dataset is read from its raw table, `landing.<source>__<table>`, which the build loads before dbt runs
  (automations/load.py): every row of every accepted file once, with `filename` and `_landing_batch` (the file's load
  id). A data test on a source sees only the rows loaded by this build (var `landing_new_loads`, the lowest new load id)
  when the build gives it. Without a raw table (dbt run by hand on a fresh warehouse) the accepted files are read
  directly, as load 0.
-#}
{% macro source(source_name, table_name) %}
  {%- set relation = builtins.source(source_name, table_name) -%}
  {%- if not execute or relation.external is none -%}
    {{ return(relation) }}
  {%- endif -%}
  {%- set raw = adapter.get_relation(database=target.database, schema='landing', identifier=source_name ~ '__' ~ table_name) -%}
  {%- if raw is not none -%}
    {%- set since = var('landing_new_loads', {}).get(source_name ~ '.' ~ table_name) -%}
    {%- if model.resource_type == 'test' and since is not none -%}
      {{ return('(select * from ' ~ raw ~ ' where _landing_batch >= ' ~ since ~ ')') }}
    {%- endif -%}
    {{ return(raw) }}
  {%- endif -%}
  {%- set ns = namespace(node=none) -%}
  {%- for node in graph.sources.values() -%}
    {%- if node.source_name == source_name and node.name == table_name -%}
      {%- set ns.node = node -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return('(select *, cast(0 as bigint) as _landing_batch from ' ~ landing_reader_sql(relation.external, ns.node.columns) ~ ')') }}
{% endmacro %}


{#-
  The incremental read of a staging model: rows of files loaded since the model's last build (its `_landing_high`,
  the highest load id it has seen), every row on a full build.
-#}
{% macro landing_new_rows(relation) -%}
  {%- if is_incremental() -%}
    (select * from {{ relation }} where _landing_batch > (select coalesce(max(_landing_high), -1) from {{ this }}))
  {%- else -%}
    {{ relation }}
  {%- endif -%}
{%- endmacro %}


{% macro landing_quote(text) -%}
  {{ return("'" ~ text.replace("'", "''") ~ "'") }}
{%- endmacro %}


{% macro landing_ident(name) -%}
  {{ return('"' ~ name.replace('"', '""') ~ '"') }}
{%- endmacro %}


{% macro landing_reader_sql(location, columns) %}
  {%- set location = location.strip() -%}
  {%- set fn = location.split('(')[0].strip().lower() -%}
  {%- set compact = location.replace(' ', '').lower() -%}
  {%- set schema = [] -%}
  {%- for name, column in columns.items() -%}
    {%- do schema.append((name, column.data_type or 'VARCHAR')) -%}
  {%- endfor -%}
  {%- set extra = [] -%}
  {%- if fn.startswith(('read_json', 'read_ndjson')) and 'columns=' not in compact -%}
    {%- set pairs = [] -%}
    {%- for name, dtype in schema -%}
      {%- do pairs.append(landing_quote(name) ~ ': ' ~ landing_quote(dtype)) -%}
    {%- endfor -%}
    {%- do extra.append('columns={' ~ pairs | join(', ') ~ '}') -%}
  {%- endif -%}
  {%- if fn.startswith(('read_csv', 'read_parquet')) and 'union_by_name=' not in compact -%}
    {%- do extra.append('union_by_name=true') -%}
  {%- endif -%}
  {%- if fn.startswith('read_csv') and 'skip=' not in compact -%}
    {%- do extra.append('skip=0') -%}
  {%- endif -%}
  {%- set call = location -%}
  {%- if extra and location.endswith(')') -%}
    {%- set ns = namespace(tail='') -%}
    {%- for e in extra -%}
      {%- set ns.tail = ns.tail ~ ', ' ~ e -%}
    {%- endfor -%}
    {%- set call = location[:-1] ~ ns.tail ~ ')' -%}
  {%- endif -%}
  {%- set nulls = [] -%}
  {%- set casts = [] -%}
  {%- for name, dtype in schema -%}
    {%- do nulls.append('cast(null as ' ~ dtype ~ ') as ' ~ landing_ident(name)) -%}
    {%- do casts.append('cast(' ~ landing_ident(name) ~ ' as ' ~ dtype ~ ') as ' ~ landing_ident(name)) -%}
  {%- endfor -%}
  {%- if 'filename=true' in compact -%}
    {%- do casts.append('filename') -%}
  {%- endif -%}
  {{ return('(select ' ~ casts | join(', ') ~ ' from (select ' ~ nulls | join(', ') ~ ' where false union all by name select * from ' ~ call ~ '))') }}
{% endmacro %}
