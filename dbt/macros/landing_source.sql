{#-
  A landing dataset is read from its raw table, `landing.<source>__<table>` in the lake, which the build loads before dbt runs
  (automations/load.py): every row of every accepted file once, with `filename` (the file's id: its accepted folder
  and name, never the mount), `_landing_row` (its place in the read that loaded it, in file order) and `_landing_batch` (the file's load id). A data
  test on a source sees only the rows loaded by this build (var `landing_new_loads`, the lowest new load id) when the
  build gives it. Files are read in one place only, the loader (landing/reader.py's reader_sql): without a raw table
  (dbt run by hand on a warehouse nothing was loaded into) a build stops and says how to load; compile and docs
  name the raw table all the same.
-#}
{% macro source(source_name, table_name) %}
  {%- set relation = builtins.source(source_name, table_name) -%}
  {%- if not execute or relation.external is none -%}
    {{ return(relation) }}
  {%- endif -%}
  {%- set raw = adapter.get_relation(database=landing_raw_database(), schema='landing', identifier=source_name ~ '__' ~ table_name) -%}
  {%- if raw is not none -%}
    {%- set since = var('landing_new_loads', {}).get(source_name ~ '.' ~ table_name) -%}
    {%- if model.resource_type == 'test' and since is not none -%}
      {{ return('(select * from ' ~ raw ~ ' where _landing_batch >= ' ~ since ~ ')') }}
    {%- endif -%}
    {{ return(raw) }}
  {%- endif -%}
  {%- if flags.WHICH in ('build', 'run', 'test', 'seed', 'snapshot') -%}
    {{ exceptions.raise_compiler_error("landing." ~ source_name ~ "__" ~ table_name ~ " does not exist in the lake " ~ env_var('LANDING_LAKE', '') ~ ": no file of " ~ source_name ~ "." ~ table_name ~ " has been loaded into this warehouse. Builds started by landing load the accepted files before dbt runs: drop a file, or run `landing rebuild " ~ source_name ~ "." ~ table_name ~ "`.") }}
  {%- endif -%}
  {{ return(api.Relation.create(database=landing_raw_database(), schema='landing', identifier=source_name ~ '__' ~ table_name)) }}
{% endmacro %}


{#- Where the raw tables are: the lake, beside the models (the loader writes them there: automations/load.py). -#}
{% macro landing_raw_database() %}
  {{ return(target.database) }}
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
  (select coalesce(max(high), -1) from {{ target.database }}.landing.model_marks where model = {{ landing_quote(model.unique_id) }})
{%- endmacro %}


{#- A staging model's post-hook: its mark is now the highest load id of its source (what its build read). -#}
{% macro landing_mark() %}
  {%- if not execute or (model.sources | length) != 1 -%}
    {{ return('') }}
  {%- endif -%}
  {%- set src = model.sources[0] -%}
  {%- set raw = adapter.get_relation(database=landing_raw_database(), schema='landing', identifier=src[0] ~ '__' ~ src[1]) -%}
  {%- if raw is none -%}
    {{ return('') }}
  {%- endif -%}
  {%- set marks = target.database ~ '.landing.model_marks' -%}
  {#- in the model's own transaction, in the lake beside it: a snapshot holds each model with its mark. The source's
      highest load id is its row in landing.load_marks (one row, where a scan of the raw table grows with history):
      the loader wrote it before dbt started, with the writer's slot held, so no row past it can exist yet -#}
  {{ return('delete from ' ~ marks ~ ' where model = ' ~ landing_quote(model.unique_id) ~ '; '
            ~ 'insert into ' ~ marks ~ ' select ' ~ landing_quote(model.unique_id)
            ~ ', coalesce((select max(high) from ' ~ target.database ~ '.landing.load_marks where dataset = '
            ~ landing_quote(src[0] ~ '.' ~ src[1]) ~ '), -1)') }}
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
