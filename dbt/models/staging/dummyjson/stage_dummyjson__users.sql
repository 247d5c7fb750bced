{{ config(materialized='incremental', unique_key='user_id', on_schema_change='fail') }}

with

source as (

    -- the rows of files loaded since this model's last build (every row on a full build)
    select * from {{ landing_new_rows(source('dummyjson', 'users')) }}

),

renamed as (

    select
        cast(id as integer) as user_id,
        firstName as first_name,
        lastName as last_name,
        email,
        username,
        filename as source_file,
        _landing_batch

    from source

),

newest as (

    -- every export is a full snapshot: keep each user from the newest file
    select * from renamed
    qualify row_number() over (partition by user_id order by source_file desc) = 1

),

final as (

    select
        newest.* exclude (_landing_batch),
        (select max(_landing_batch) from renamed) as _landing_high
    from newest
    {% if is_incremental() %}
    left join {{ this }} as built on built.user_id = newest.user_id
    where built.user_id is null or newest.source_file > built.source_file
    {% endif %}

)

select * from final
