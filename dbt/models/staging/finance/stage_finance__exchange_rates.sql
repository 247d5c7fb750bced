{{ config(materialized='incremental', unique_key='rate_id', on_schema_change='fail') }}

with

source as (

    -- the rows of files loaded since this model's last build (every row on a full build)
    select * from {{ landing_new_rows(source('finance', 'exchange_rates')) }}

),

renamed as (

    select
        upper(currency) as currency,
        as_of as rate_date,
        cast(rate_to_usd as decimal(18, 6)) as rate_to_usd,
        filename as source_file,
        _landing_batch
    from source

),

keyed as (

    select currency || '-' || strftime(rate_date, '%Y-%m-%d') as rate_id, * from renamed

),

newest as (

    -- a later file corrects an earlier one: keep each currency and day from the newest accepted file
    select * from keyed
    qualify row_number() over (partition by rate_id order by source_file desc) = 1

),

final as (

    select
        newest.* exclude (_landing_batch),
        (select max(_landing_batch) from renamed) as _landing_high
    from newest
    {% if is_incremental() %}
    left join {{ this }} as built on built.rate_id = newest.rate_id
    where built.rate_id is null or newest.source_file > built.source_file
    {% endif %}

)

select * from final
