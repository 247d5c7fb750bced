{#-
  Every landing dataset is read with the schema its source declares: exactly the declared columns, cast to their
  data_type, a column a file lacks reading as NULL. The Jinja twin of landing/reader.py (reader_call, reader_sql);
  tests/unit/test_reader.py checks that the two agree.
-#}

{#-
  A landing dataset is read from its raw table, `landing.<source>__<table>`, which the build loads before dbt runs
  (automations/load.py): every row of every accepted file once, with `filename` (the file's id: its accepted folder
  and name, never the mount), `_landing_row` (its place in the read that loaded it, in file order) and `_landing_batch` (the file's load id). A data
  test on a source sees only the rows loaded by this build (var `landing_new_loads`, the lowest new load id) when the
  build gives it. Without a raw table (dbt run by hand on a fresh warehouse) the accepted files are read directly, as
  load 0.
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
  {%- set node = landing_source_node(source_name, table_name) -%}
  {%- set folder = relation.external.split("'")[1].rsplit('/', 1)[0] -%}
  {%- set relative = folder[(env_var('LANDING_ACCEPTED_ROOT', '/tmp/landing/_accepted') | length) + 1:] -%}
  {{ return('(select * replace (' ~ landing_quote(relative ~ '/') ~ ' || parse_filename(filename) as filename), '
            ~ 'row_number() over () as _landing_row, cast(0 as bigint) as _landing_batch from '
            ~ landing_reader_sql(relation.external, node.columns) ~ ')') }}
{% endmacro %}


{% macro landing_source_node(source_name, table_name) %}
  {%- for node in graph.sources.values() -%}
    {%- if node.source_name == source_name and node.name == table_name -%}
      {{ return(node) }}
    {%- endif -%}
  {%- endfor -%}
  {{ exceptions.raise_compiler_error("no source " ~ source_name ~ "." ~ table_name ~ " in the dbt project") }}
{% endmacro %}


{#-
  What a staging model reads from its landing source, by what the source's files mean (`meta.landing.kind`, see
  docs/adding-a-source.md). The one definition of "newest": the later accepted file (names start with their landing
  time), and within one file the later row. A full build reads:
    append   every row;
    snapshot the newest version of each key (`meta.landing.key`).
  An incremental build reads what the full build would give for the keys touched since the model's last build (its
  mark in landing.model_marks): append, the new rows; snapshot, the newest version of every key a new row carries,
  chosen among all its versions, so a file that lands late loses to a newer one already built. The `landing`
  incremental strategy then replaces those keys' rows whole (an emptied cart's lines go too), and the mark moves
  (landing_mark, a post-hook of every staging model). Incremental equals full by construction: a key's rows depend on
  that key's versions only; tests/test_equivalence.py checks it on generated files.
-#}
{% macro landing_rows(source_name, table_name) -%}
  {%- set relation = source(source_name, table_name) -%}
  {%- if not execute -%}
    {{ return(relation) }}
  {%- endif -%}
  {%- set meta = landing_meta(source_name, table_name) -%}
  {%- set since = landing_since() -%}
  {%- if meta.kind == 'snapshot' -%}
    {%- set keys = meta.key | join(', ') -%}
    (select * from {{ relation }}
    {%- if is_incremental() %} where ({{ keys }}) in (select {{ keys }} from {{ relation }} where _landing_batch > {{ since }}){% endif %}
    qualify row_number() over (partition by {{ keys }} order by filename desc, _landing_row desc) = 1)
  {%- else -%}
    (select * from {{ relation }}{% if is_incremental() %} where _landing_batch > {{ since }}{% endif %})
  {%- endif -%}
{%- endmacro %}


{% macro landing_meta(source_name, table_name) %}
  {%- set landing = (landing_source_node(source_name, table_name).meta or {}).get('landing') or {} -%}
  {%- set key = landing.get('key') or [] -%}
  {%- if key is string -%}{%- set key = [key] -%}{%- endif -%}
  {%- set quoted = [] -%}
  {%- for k in key -%}{%- do quoted.append(landing_ident(k)) -%}{%- endfor -%}
  {{ return({'kind': landing.get('kind', 'append'), 'key': quoted}) }}
{% endmacro %}


{#- The highest load id of its source this model has read (-1: none), as SQL: its row in landing.model_marks. -#}
{% macro landing_since() -%}
  (select coalesce(max(high), -1) from landing.model_marks where model = {{ landing_quote(model.unique_id) }})
{%- endmacro %}


{#- A staging model's post-hook: its mark is now the highest load id of its source (what its build read). -#}
{% macro landing_mark() %}
  {%- if not execute or (model.sources | length) != 1 -%}
    {{ return('') }}
  {%- endif -%}
  {%- set src = model.sources[0] -%}
  {%- set raw = adapter.get_relation(database=target.database, schema='landing', identifier=src[0] ~ '__' ~ src[1]) -%}
  {%- if raw is none -%}
    {{ return('') }}
  {%- endif -%}
  {{ return('create table if not exists landing.model_marks (model varchar primary key, high bigint); '
            ~ 'insert or replace into landing.model_marks select ' ~ landing_quote(model.unique_id)
            ~ ', coalesce(max(_landing_batch), -1) from ' ~ raw) }}
{% endmacro %}


{#-
  The `landing` incremental strategy: the rows of every key the new rows touched are replaced whole. Deleted: the
  target's rows whose key (config `unique_key`, the model's columns for the source's `meta.landing.key`, renamed and
  cast, in order) is a key of a row loaded since the model's mark, even where the newest version yields no rows;
  inserted: what the model made of those keys' newest versions. An append source deletes nothing. A model that does
  not read `landing_rows` (a plain `source()`, as dbt users write first) read every row: its table is replaced whole.
-#}
{% macro get_incremental_landing_sql(arg_dict) %}
  {%- set target = arg_dict['target_relation'] -%}
  {%- set temp = arg_dict['temp_relation'] -%}
  {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
  {%- if 'landing_rows(' not in model.raw_code or (model.sources | length) != 1 -%}
    {#- a model that reads source() itself (or several sources) read everything: it replaces its table whole -#}
    delete from {{ target }};
    insert into {{ target }} ({{ columns }}) select {{ columns }} from {{ temp }}
  {%- else -%}
  {%- set src = model.sources[0] -%}
  {%- set meta = landing_meta(src[0], src[1]) -%}
  {%- if meta.kind == 'snapshot' -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- set mine = [] if unique_key is none else [unique_key] if unique_key is string else unique_key -%}
    {%- if (mine | length) != (meta.key | length) -%}
      {{ exceptions.raise_compiler_error(model.name ~ ": unique_key " ~ mine ~ " must name the model's columns for its source's key " ~ meta.key ~ ", in order (docs/adding-a-source.md)") }}
    {%- endif -%}
    {%- set raw = source(src[0], src[1]) -%}
    delete from {{ target }} where ({{ mine | join(', ') }}) in (select {{ meta.key | join(', ') }} from {{ raw }} where _landing_batch > {{ landing_since() }});
  {% endif %}
  insert into {{ target }} ({{ columns }}) select {{ columns }} from {{ temp }}
  {%- endif %}
{% endmacro %}


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
